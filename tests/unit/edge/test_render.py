"""Every rendered variant of Envoy's configuration passes `envoy --mode validate`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from seseragi.config import Settings
from seseragi.edge import certs, render
from seseragi.edge.stack import envoy_binary

pytestmark = pytest.mark.unit


def settings(tmp_path: Path, **overrides: object) -> Settings:
    base: dict[str, object] = {"cache_dir": tmp_path, "edge_secret": "s3cret"}
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


def jwks_file(tmp_path: Path) -> Path:
    path = tmp_path / "jwks.json"
    key = {"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256"}
    key |= {"x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"}
    key |= {"y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}
    path.write_text(json.dumps({"keys": [key]}))
    return path


VARIANTS = {
    "local": ({}, "127.0.0.1"),
    "two-replicas": ({"edge_upstreams": "127.0.0.1:50051,127.0.0.1:50052"}, "127.0.0.1"),
    "container": (
        {"edge_upstreams": "seseragi-1:50051,seseragi-2:50051", "edge_dev_tokens": False},
        "0.0.0.0",
    ),
    "open-reflection": ({"edge_open_reflection": True, "edge_cors_origins": ""}, "127.0.0.1"),
    "remote-jwks": (
        {"edge_jwks_uri": "https://issuer.example.com/.well-known/jwks.json"},
        "127.0.0.1",
    ),
    "global-rate-limits": ({"edge_rate_limit_service": "ratelimit:8081"}, "0.0.0.0"),
    "tls": ({}, "0.0.0.0"),  # with a certificate the test issues
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_rendered_config_validates(tmp_path: Path, variant: str) -> None:
    overrides, listen = VARIANTS[variant]
    if variant == "tls":
        issued = certs.issue(tmp_path / "tls")
        overrides = {"edge_tls_cert_file": issued.cert, "edge_tls_key_file": issued.key}
    rendered = render.render(
        settings(tmp_path, edge_jwks_file=jwks_file(tmp_path), **overrides),
        tmp_path / "out",
        listen_address=listen,
    )
    result = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(rendered.config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert rendered.config.stat().st_mode & 0o077 == 0  # it holds the edge secret
    # Open client connections are bounded (Envoy warns at start-up when nothing bounds them).
    overload = yaml.safe_load(rendered.config.read_text())["overload_manager"]
    (monitor,) = overload["resource_monitors"]
    assert monitor["typed_config"]["max_active_downstream_connections"] > 0


def test_admin_listens_on_loopback_only(tmp_path: Path) -> None:
    text = render.render_text(settings(tmp_path), tmp_path / "d.binpb", "0.0.0.0")
    admin = text.split("static_resources:")[0]
    assert "address: 127.0.0.1" in admin and "0.0.0.0" not in admin


def test_generate_routes_have_no_timeout(tmp_path: Path) -> None:
    text = render.render_text(
        settings(tmp_path, heartbeat_interval_seconds=20), tmp_path / "d", "x"
    )
    assert text.count("timeout: 0s") >= 2
    assert "stream_idle_timeout: 120s" in text  # six heartbeats


def test_render_refuses_without_a_secret(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="EDGE_SECRET"):
        render.render(settings(tmp_path, edge_secret=""), tmp_path / "out")


@pytest.mark.parametrize(
    ("per_minute", "bucket"),
    [
        (6, {"max_tokens": 6, "tokens_per_fill": 1, "fill_interval": "10.000s"}),
        (6000, {"max_tokens": 6000, "tokens_per_fill": 100, "fill_interval": "1.000s"}),
    ],
)
def test_token_bucket_holds_a_minute_and_refills_evenly(
    per_minute: int, bucket: dict[str, object]
) -> None:
    assert render.token_bucket(per_minute) == bucket


def test_remote_jwks_is_fetched_over_tls_and_cached(tmp_path: Path) -> None:
    uri = "https://login.example.com:8443/keys"
    overrides = {"edge_jwks_uri": uri, "edge_jwks_cache_seconds": 900, "edge_dev_tokens": False}
    text = render.render_text(settings(tmp_path, **overrides), tmp_path / "d", "127.0.0.1")
    config = yaml.safe_load(text)
    manager = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    jwt = next(
        f for f in manager["typed_config"]["http_filters"] if f["name"].endswith("jwt_authn")
    )
    remote = jwt["typed_config"]["providers"]["remote_jwks"]["remote_jwks"]
    assert remote["http_uri"] == {"uri": uri, "cluster": "jwks_issuer", "timeout": "5s"}
    assert remote["cache_duration"] == "900s"
    cluster = next(c for c in config["static_resources"]["clusters"] if c["name"] == "jwks_issuer")
    address = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert address["address"]["socket_address"] == {
        "address": "login.example.com",
        "port_value": 8443,
    }
    tls = cluster["transport_socket"]["typed_config"]
    assert tls["sni"] == "login.example.com"
    assert tls["common_tls_context"]["validation_context"]["trusted_ca"]


def test_a_percent_in_the_edge_secret_is_sent_literally(tmp_path: Path) -> None:
    text = render.render_text(settings(tmp_path, edge_secret="a%b"), tmp_path / "d", "127.0.0.1")
    assert '"a%%b"' in text and "ENVIRONMENT" not in text


@pytest.mark.parametrize("missing", ["edge_tls_cert_file", "edge_tls_key_file"])
def test_tls_needs_both_the_certificate_and_the_key(tmp_path: Path, missing: str) -> None:
    issued = certs.issue(tmp_path / "tls")
    files = {"edge_tls_cert_file": issued.cert, "edge_tls_key_file": issued.key}
    del files[missing]
    with pytest.raises(ValueError, match="SESERAGI_EDGE_TLS_CERT_FILE and"):
        render.render(settings(tmp_path, **files), tmp_path / "out")


def test_no_certificate_keeps_the_local_listener_plaintext(tmp_path: Path) -> None:
    config = yaml.safe_load(render.render(settings(tmp_path), tmp_path / "out").config.read_text())
    assert "transport_socket" not in config["static_resources"]["listeners"][0]["filter_chains"][0]


def breakers(text: str, cluster: str) -> dict[str, dict[str, int]]:
    config = yaml.safe_load(text)["static_resources"]["clusters"]
    found = next(c for c in config if c["name"] == cluster)
    return {t["priority"]: t for t in found["circuit_breakers"]["thresholds"]}


def test_the_breaker_admits_what_every_listed_replica_takes_and_health_has_its_own(
    tmp_path: Path,
) -> None:
    two = settings(
        tmp_path,
        edge_upstreams="127.0.0.1:1,127.0.0.1:2",
        max_running_requests=4,
        max_queued_requests=6,
        rpc_headroom=5,
    )
    thresholds = breakers(render.render_text(two, tmp_path / "d", "x"), "seseragi")
    assert thresholds["DEFAULT"]["max_requests"] == 2 * (4 + 6 + 5)
    assert thresholds["DEFAULT"]["max_pending_requests"] == 2 * (4 + 6 + 5)
    assert thresholds["HIGH"]["max_requests"] == render.HEALTH_REQUESTS


def test_a_dns_name_counts_as_many_replicas_as_kubernetes_may_scale_to(tmp_path: Path) -> None:
    autoscaler = yaml.safe_load(Path("deploy/k8s/base/autoscaling.yaml").read_text())
    assert autoscaler["spec"]["maxReplicas"] == render.REPLICAS_PER_NAME
    named = settings(tmp_path, edge_upstreams="seseragi:50051")
    thresholds = breakers(render.render_text(named, tmp_path / "d", "x"), "seseragi")
    per_replica = named.max_running_requests + named.max_queued_requests + named.rpc_headroom
    assert thresholds["DEFAULT"]["max_requests"] == render.REPLICAS_PER_NAME * per_replica
