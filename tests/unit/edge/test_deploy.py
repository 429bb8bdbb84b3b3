"""The committed compose and Kubernetes Envoy configs: current, valid, and one source of limits."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from google.protobuf import descriptor_pb2

from seseragi.config import Settings
from seseragi.edge import certs, deploy, keys, ratelimit, render
from seseragi.edge.stack import envoy_binary
from tests.servers import REPO_ROOT

pytestmark = pytest.mark.unit
Object = dict[str, Any]
TARGETS = sorted(deploy.TARGETS)
SHARED_LIMITS = sorted(name for name, target in deploy.TARGETS.items() if target.rules)

# envoyproxy/ratelimit's YAML rules (src/config/config_impl.go): it refuses unknown keys.
RATE_LIMIT_SCHEMA: Object = {
    "type": "object",
    "required": ["domain", "descriptors"],
    "additionalProperties": False,
    "properties": {
        "domain": {"type": "string", "minLength": 1},
        "descriptors": {"type": "array", "items": {"$ref": "#/$defs/descriptor"}},
    },
    "$defs": {
        "descriptor": {
            "type": "object",
            "required": ["key"],
            "additionalProperties": False,
            "properties": {
                "key": {"type": "string", "minLength": 1},
                "value": {"type": "string"},
                "rate_limit": {
                    "type": "object",
                    "required": ["unit", "requests_per_unit"],
                    "additionalProperties": False,
                    "properties": {
                        "unit": {"enum": ["second", "minute", "hour", "day", "week", "month"]},
                        "requests_per_unit": {"type": "integer", "minimum": 0},
                        "unlimited": {"type": "boolean"},
                        "name": {"type": "string"},
                    },
                },
                "descriptors": {"type": "array", "items": {"$ref": "#/$defs/descriptor"}},
                "shadow_mode": {"type": "boolean"},
                "detailed_metric": {"type": "boolean"},
            },
        }
    },
}


def committed(name: str) -> deploy.Target:
    target = deploy.TARGETS[name]
    return dataclasses.replace(
        target,
        config=REPO_ROOT / target.config,
        descriptor=REPO_ROOT / target.descriptor,
        rules=None if target.rules is None else REPO_ROOT / target.rules,
        wrapper=REPO_ROOT / target.wrapper,
    )


def envoy_validate(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def http_filters(config: Object) -> list[Object]:
    listener = config["static_resources"]["listeners"][0]
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    filters: list[Object] = manager["http_filters"]
    return filters


def virtual_host(config: Object) -> Object:
    listener = config["static_resources"]["listeners"][0]
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    host: Object = manager["route_config"]["virtual_hosts"][0]
    return host


@pytest.mark.parametrize("name", TARGETS)
def test_committed_files_equal_a_fresh_render(tmp_path: Path, name: str) -> None:
    """`make envoy-deploy` was run after the last change to the template or the settings."""
    wrapper = tmp_path / deploy.GRACEFUL_ENVOY  # the one file rendering reads from the checkout
    wrapper.parent.mkdir(parents=True)
    shutil.copyfile(REPO_ROOT / deploy.GRACEFUL_ENVOY, wrapper)
    fresh, current = deploy.render_target(Settings(), name, tmp_path), committed(name)
    assert current.config.read_text() == fresh.config.read_text(), "run `make envoy-deploy`"
    if current.rules is not None and fresh.rules is not None:
        assert current.rules.read_text() == fresh.rules.read_text(), "run `make envoy-deploy`"
    descriptors = [
        descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes())
        for path in (current.descriptor, fresh.descriptor)
    ]
    assert descriptors[0] == descriptors[1], "run `make envoy-deploy`"
    assert current.wrapper.read_bytes() == fresh.wrapper.read_bytes(), "run `make envoy-deploy`"


@pytest.mark.parametrize("name", TARGETS)
def test_committed_config_passes_envoy_validate(tmp_path: Path, name: str) -> None:
    """The committed file itself, with only the mount directory pointed at real files here."""
    current = committed(name)
    (tmp_path / "jwt").mkdir()
    (tmp_path / "seseragi.binpb").write_bytes(current.descriptor.read_bytes())
    (tmp_path / "jwt" / "jwks.json").write_text(keys.es256_jwks(keys.dev_es256_key(tmp_path)))
    certs.issue(tmp_path / "tls")
    text = current.config.read_text()
    # The descriptor set and the JWKS; the certificate and key where Envoy terminates TLS.
    assert text.count(f"{deploy.CONFIG_DIR}/") == (4 if current.tls else 2)
    config = tmp_path / "envoy.yaml"
    config.write_text(text.replace(f"{deploy.CONFIG_DIR}/", f"{tmp_path}/"))
    result = envoy_validate(config)
    assert result.returncode == 0, result.stdout + result.stderr


def test_validation_fails_without_the_mounted_descriptor_set(tmp_path: Path) -> None:
    """So the test above proves the mounted paths are read, not merely well formed."""
    config = tmp_path / "envoy.yaml"
    config.write_text(committed("compose").config.read_text())
    assert envoy_validate(config).returncode != 0


@pytest.mark.parametrize("name", TARGETS)
def test_container_config_holds_no_secret_and_keeps_admin_off_the_network(name: str) -> None:
    text = committed(name).config.read_text()
    config = yaml.safe_load(text)
    assert config["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    listener = config["static_resources"]["listeners"][0]["address"]["socket_address"]
    assert listener["address"] == "0.0.0.0"
    # One per route: the two gRPC ones and each OpenAI-compatible one; no key inline.
    assert text.count(render.SECRET_FROM_ENV) == 2 + len(render.OPENAI_PATHS)
    assert '"kty"' not in text
    clusters = {c["name"]: c for c in config["static_resources"]["clusters"]}
    host, _, port = deploy.TARGETS[name].upstream.rpartition(":")
    assert clusters["seseragi"]["type"] == ("STATIC" if host[0].isdigit() else "STRICT_DNS")
    endpoint = clusters["seseragi"]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
    assert endpoint["endpoint"]["address"]["socket_address"] == {
        "address": host,
        "port_value": int(port),
    }
    http_host, _, http_port = deploy.TARGETS[name].http_upstream.rpartition(":")
    http_endpoint = clusters["seseragi_http"]["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert http_endpoint[0]["endpoint"]["address"]["socket_address"] == {
        "address": http_host,
        "port_value": int(http_port),
    }
    (jwt,) = (f for f in http_filters(config) if f["name"].endswith("jwt_authn"))
    (provider,) = jwt["typed_config"]["providers"].values()
    assert provider["local_jwks"] == {"filename": str(deploy.JWKS)}


def listener_tls(name: str) -> Object | None:
    chain = yaml.safe_load(committed(name).config.read_text())["static_resources"]["listeners"][0]
    socket: Object | None = chain["filter_chains"][0].get("transport_socket")
    return socket


@pytest.mark.parametrize("name", ["compose", "k8s"])
def test_compose_and_kubernetes_listen_with_tls_for_every_protocol(name: str) -> None:
    socket = listener_tls(name)
    assert socket is not None and deploy.TARGETS[name].tls
    context = socket["typed_config"]["common_tls_context"]
    assert context["alpn_protocols"] == ["h2", "http/1.1"]  # gRPC; gRPC-Web, REST, OpenAI
    assert context["tls_certificates"] == [
        {
            "certificate_chain": {"filename": str(deploy.TLS_CERT)},
            "private_key": {"filename": str(deploy.TLS_KEY)},
        }
    ]


def test_the_sidecar_stays_plaintext_behind_the_platforms_tls() -> None:
    """Cloud Run and an ALB end TLS themselves and forward cleartext HTTP/2 to the task."""
    assert listener_tls("sidecar") is None and not deploy.TARGETS["sidecar"].tls


def emitted_descriptors(config: Object) -> list[tuple[str, str | None]]:
    """(key, value) of each descriptor Envoy's actions send; None: the request's own value."""
    host = virtual_host(config)
    routes = [r["route"].get("rate_limits", []) for r in host["routes"]]
    emitted = []
    for limit in host["rate_limits"] + [limit for limits in routes for limit in limits]:
        (action,) = limit["actions"]
        if "generic_key" in action:
            generic = action["generic_key"]
            emitted.append((generic["descriptor_key"], generic["descriptor_value"]))
        elif "remote_address" in action:
            emitted.append(("remote_address", None))  # Envoy's fixed key for this action
        else:
            emitted.append((action["request_headers"]["descriptor_key"], None))
    return emitted


@pytest.mark.parametrize("name", SHARED_LIMITS)
def test_rate_limit_rules_match_the_service_schema_and_envoys_descriptors(name: str) -> None:
    current = committed(name)
    assert current.rules is not None
    rules = yaml.safe_load(current.rules.read_text())
    jsonschema.validate(rules, RATE_LIMIT_SCHEMA)
    config = yaml.safe_load(current.config.read_text())
    names = [f["name"] for f in http_filters(config)]
    assert "envoy.filters.http.local_ratelimit" not in names
    (global_filter,) = (f for f in http_filters(config) if f["name"].endswith(".ratelimit"))
    assert global_filter["typed_config"]["domain"] == rules["domain"]
    assert global_filter["typed_config"]["rate_limited_as_resource_exhausted"] is True
    service = global_filter["typed_config"]["rate_limit_service"]["grpc_service"]
    cluster = next(c for c in config["static_resources"]["clusters"] if c["name"] == "ratelimit")
    assert service["envoy_grpc"]["cluster_name"] == cluster["name"]
    # Every descriptor Envoy sends has a rule, and every rule is reached by a descriptor.
    rule_keys = {(rule["key"], rule.get("value")) for rule in rules["descriptors"]}
    assert set(emitted_descriptors(config)) == rule_keys


def test_local_buckets_and_global_rules_come_from_the_same_numbers(tmp_path: Path) -> None:
    settings = Settings(
        cache_dir=tmp_path,
        edge_secret="s",
        edge_requests_per_minute=7,
        edge_global_requests_per_minute=700,
        edge_health_requests_per_minute=30,
    )
    local = yaml.safe_load(render.render_text(settings, tmp_path / "d.binpb", "127.0.0.1"))
    (bucket_filter,) = (f for f in http_filters(local) if f["name"].endswith("local_ratelimit"))
    buckets = bucket_filter["typed_config"]
    (health_route,) = (
        r for r in virtual_host(local)["routes"] if "Health" in r["match"].get("prefix", "")
    )
    health = health_route["typed_per_filter_config"]["envoy.filters.http.local_ratelimit"]
    per_minute = {
        "subject": buckets["descriptors"][0]["token_bucket"]["max_tokens"],
        "global": buckets["token_bucket"]["max_tokens"],
        "remote_address": health["descriptors"][0]["token_bucket"]["max_tokens"],
    }
    rules = ratelimit.service_config(settings)["descriptors"]
    assert {r["key"]: r["rate_limit"]["requests_per_unit"] for r in rules} == per_minute
    assert {r["rate_limit"]["unit"] for r in rules} == {"minute"}
    assert per_minute == {"subject": 7, "global": 700, "remote_address": 30}
    assert health["always_consume_default_token_bucket"] is False  # only the address's bucket


def test_the_sidecar_counts_its_own_buckets_and_needs_no_rate_limit_service() -> None:
    """One Envoy per task (ECS, ACI): no `ratelimit` service runs beside it."""
    config = yaml.safe_load(committed("sidecar").config.read_text())
    names = [f["name"] for f in http_filters(config)]
    assert "envoy.filters.http.local_ratelimit" in names
    assert not any(name.endswith(".ratelimit") for name in names)
    assert "ratelimit" not in {c["name"] for c in config["static_resources"]["clusters"]}


def test_container_renders_carry_no_development_origin(tmp_path: Path) -> None:
    settings = Settings(
        cache_dir=tmp_path,
        edge_secret="s",
        edge_cors_origins="http://localhost:3000,http://127.0.0.1:8000,https://chat.example.com",
    )
    for name in TARGETS:
        text = deploy.config_text(settings, deploy.TARGETS[name])
        assert "localhost" not in text and "127.0.0.1:8000" not in text, name
        assert '"https://chat.example.com"' in text, name


def test_every_provider_reads_only_the_header_and_caps_token_lifetime(tmp_path: Path) -> None:
    settings = Settings(cache_dir=tmp_path, edge_secret="s", edge_jwt_max_lifetime=900)
    config = yaml.safe_load(render.render_text(settings, tmp_path / "d.binpb", "127.0.0.1"))
    (jwt_filter,) = (f for f in http_filters(config) if f["name"].endswith("jwt_authn"))
    for provider in jwt_filter["typed_config"]["providers"].values():
        assert provider["from_headers"] == [{"name": "authorization", "value_prefix": "Bearer "}]
        assert provider["require_expiration"] is True and provider["max_lifetime"] == "900s"


def test_a_target_is_rendered_only_into_a_checkout(tmp_path: Path) -> None:
    """The checkout is named, never found from the package's own files."""
    with pytest.raises(FileNotFoundError, match="no checkout"):
        deploy.render_target(Settings(), "k8s", tmp_path)
    assert list(tmp_path.iterdir()) == []
