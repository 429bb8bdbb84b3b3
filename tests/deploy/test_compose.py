"""docker-compose.yml against the compose specification, and the stack it promises."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from seseragi.config import Settings
from seseragi.edge import deploy
from tests.deploy import dockerfile
from tests.servers import REPO_ROOT

pytestmark = pytest.mark.unit
COMPOSE = REPO_ROOT / "docker-compose.yml"
SETTINGS = {f"SESERAGI_{name.upper()}" for name in Settings.model_fields}
Object = dict[str, Any]
# Mounted files a clone does not hold, with the command (in docs/deployment.md) that writes one.
PRODUCED = {
    "envoy/keys/jwks.json": ["envoy", "jwks", "--out", "envoy/keys/jwks.json"],
    "envoy/tls": ["envoy", "cert", "--out", "envoy/tls"],
}


def check_compose_spec(path: Path) -> subprocess.CompletedProcess[str]:
    checker = Path(sys.executable).parent / "check-jsonschema"
    return subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@cache
def services() -> Object:
    parsed: Object = yaml.safe_load(COMPOSE.read_text())["services"]
    return parsed


def seconds(duration: str) -> float:
    assert duration.endswith("s"), duration
    return float(duration[:-1])


def test_matches_the_compose_specification() -> None:
    result = check_compose_spec(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_specification_check_rejects_a_misspelt_key(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("    depends_on:\n", "    depend_on:\n", 1))
    assert check_compose_spec(broken).returncode != 0


def test_only_envoy_and_grafana_are_published() -> None:
    published = {name: spec["ports"] for name, spec in services().items() if "ports" in spec}
    assert published == {"envoy": ["8080:8080"], "grafana": ["3000:3000"]}


def test_two_replicas_health_checked_like_the_image_and_drained_before_sigkill() -> None:
    seseragi = services()["seseragi"]
    assert seseragi["deploy"]["replicas"] == 2 and seseragi["command"] == ["serve"]
    _, image_check = dockerfile.healthcheck("cpu")
    assert seseragi["healthcheck"]["test"] == ["CMD", *image_check]
    drain = float(seseragi["environment"]["SESERAGI_SHUTDOWN_GRACE_SECONDS"])
    assert seconds(seseragi["stop_grace_period"]) > drain
    assert seseragi["build"] == {"context": ".", "target": "cpu"}
    for name in ("seseragi", "worker", "seseragi-gpu"):
        assert {k for k in services()[name]["environment"] if k.startswith("SESERAGI_")} <= SETTINGS


def test_dependencies_wait_for_health() -> None:
    every = services()
    assert every["envoy"]["depends_on"]["seseragi"] == {"condition": "service_healthy"}
    assert every["seseragi"]["depends_on"]["redis"] == {"condition": "service_healthy"}
    assert every["grafana"]["depends_on"]["prometheus"] == {"condition": "service_healthy"}
    for name, spec in every.items():
        for target, rule in spec.get("depends_on", {}).items():
            if "test" in every[target].get("healthcheck", {}):
                assert rule["condition"] == "service_healthy", (name, target)


def test_worker_envoy_redis_and_rate_limits() -> None:
    every = services()
    assert every["worker"]["command"] == ["worker"] and every["worker"]["healthcheck"]["disable"]
    assert every["envoy"]["image"].startswith("envoyproxy/envoy:v1.40")
    assert any(v.endswith(":/etc/envoy/envoy.yaml:ro") for v in every["envoy"]["volumes"])
    redis = every["redis"]["command"]
    assert redis[redis.index("--appendonly") + 1] == "yes"
    assert every["ratelimit"]["image"].startswith("envoyproxy/ratelimit")
    assert every["ratelimit"]["environment"]["REDIS_URL"] == "redis:6379"


def test_gpu_profile_reserves_an_nvidia_device_and_joins_the_pool() -> None:
    gpu = services()["seseragi-gpu"]
    assert gpu["profiles"] == ["gpu"] and gpu["build"]["target"] == "cuda"
    device = gpu["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert gpu["environment"]["SESERAGI_QUANTIZATION"] == "nf4"
    assert "seseragi" in gpu["networks"]["default"]["aliases"]
    assert "profiles" not in services()["seseragi"]


def test_observability_stack_is_wired_together() -> None:
    every = services()
    mounts = dict(reversed(v.split(":")[:2]) for v in every["grafana"]["volumes"] if "./" in v)
    provisioning = REPO_ROOT / mounts["/etc/grafana/provisioning"]
    sources = yaml.safe_load((provisioning / "datasources" / "datasources.yaml").read_text())
    urls = {s["type"]: s["url"] for s in sources["datasources"]}
    assert urls == {"prometheus": "http://prometheus:9090", "jaeger": "http://jaeger:16686"}
    boards = yaml.safe_load((provisioning / "dashboards" / "dashboards.yaml").read_text())
    assert boards["providers"][0]["options"]["path"] in mounts  # the dashboards are mounted there
    collector = yaml.safe_load((REPO_ROOT / "deploy/compose/otel-collector.yaml").read_text())
    assert collector["exporters"]["otlp/jaeger"]["endpoint"] == "jaeger:4317"
    environment = every["seseragi"]["environment"]
    assert environment["SESERAGI_OTLP_ENDPOINT"] == "http://otel-collector:4317"
    assert environment["SESERAGI_METRICS_HOST"] == "0.0.0.0"
    volumes = every["prometheus"]["volumes"]
    assert "./deploy/compose/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in volumes
    assert "./deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in volumes
    scrape = yaml.safe_load((REPO_ROOT / "deploy/compose/prometheus.yml").read_text())
    assert scrape["rule_files"] == ["alerts.yml"]


def bind_mounts(service: str) -> dict[str, str]:
    """Target in the container -> source in the repository, with ${VAR:-default} at its default."""
    mounts = {}
    for volume in services()[service].get("volumes", []):
        expanded = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", volume)
        source, target = expanded.split(":")[:2]
        if source.startswith("./"):
            mounts[target] = source[2:]
    return mounts


def produce(relative: str, out: Path) -> Path:
    """Run the documented command for a mounted file that is not committed, writing under `out`."""
    command = PRODUCED[relative]
    page = (REPO_ROOT / "docs" / "deployment.md").read_text()
    assert f"seseragi {' '.join(command)}" in page, "docs/deployment.md must say how to produce it"
    seseragi = Path(sys.executable).parent / "seseragi"
    environment = {**os.environ, "SESERAGI_CACHE_DIR": str(out / "cache")}
    subprocess.run(
        [str(seseragi), *(str(out / a) if a == relative else a for a in command)],
        env=environment,
        capture_output=True,
        timeout=120,
        check=True,
    )
    return out / relative


def check_produced(source: str, path: Path) -> None:
    """What Envoy reads from a produced mount is there, and its own user in the container can."""
    if source == "envoy/tls":
        files = [path / "tls.crt", path / "tls.key"]
        assert "BEGIN CERTIFICATE" in files[0].read_text()
        assert "BEGIN PRIVATE KEY" in files[1].read_text()
    else:
        (key,) = json.loads(path.read_text())["keys"]
        assert key["kty"] == "EC" and "d" not in key  # public half only
        files = [path]
    assert all(f.stat().st_mode & 0o004 for f in files)


def test_every_mounted_file_is_committed_or_produced_by_a_documented_command(
    tmp_path: Path,
) -> None:
    sources = {s for name in services() for s in bind_mounts(name).values()}
    assert set(PRODUCED) <= sources
    for source in sorted(sources):
        if source in PRODUCED:
            check_produced(source, produce(source, tmp_path))
            continue
        assert (REPO_ROOT / source).exists(), source
        tracked = subprocess.run(
            ["git", "ls-files", "--error-unmatch", source],
            cwd=REPO_ROOT,
            capture_output=True,
            check=False,
        )
        assert tracked.returncode == 0, f"{source} is mounted but not committed"


def test_envoy_mounts_the_rendered_compose_config_and_the_rate_limit_rules() -> None:
    target = deploy.TARGETS["compose"]
    envoy = bind_mounts("envoy")
    assert envoy == {
        "/etc/envoy/envoy.yaml": str(target.config),
        str(deploy.DESCRIPTOR): str(target.descriptor),
        str(deploy.JWKS): "envoy/keys/jwks.json",
        str(deploy.TLS_CERT.parent): "envoy/tls",
        "/etc/envoy/bin/graceful-envoy": str(deploy.GRACEFUL_ENVOY),
    }
    # Through the draining wrapper, so stopping the container cuts no stream.
    assert services()["envoy"]["command"] == [
        "/bin/bash",
        "/etc/envoy/bin/graceful-envoy",
        "-c",
        "/etc/envoy/envoy.yaml",
    ]
    rules = bind_mounts("ratelimit")["/data/ratelimit/config"]
    assert (REPO_ROOT / rules / target.rules.name) == REPO_ROOT / target.rules
    assert sorted(p.name for p in (REPO_ROOT / rules).iterdir()) == [target.rules.name]


def test_envoy_and_the_service_share_the_edge_secret_and_admin_stays_inside() -> None:
    every = services()
    secret = every["envoy"]["environment"]["SESERAGI_EDGE_SECRET"]
    assert secret.startswith("${SESERAGI_EDGE_SECRET:?")  # compose refuses to start without it
    for name in ("seseragi", "seseragi-gpu"):
        assert every[name]["environment"]["SESERAGI_EDGE_SECRET"] == secret
    assert "expose" not in every["envoy"]  # the admin port is on the container's loopback


def test_the_job_redis_never_evicts_and_the_cache_redis_evicts_only_cache() -> None:
    every = services()
    jobs, cache = every["redis"]["command"], every["redis-cache"]["command"]
    assert jobs[jobs.index("--maxmemory-policy") + 1] == "noeviction"
    assert jobs[jobs.index("--appendonly") + 1] == "yes" and "--maxmemory" in jobs
    assert cache[cache.index("--maxmemory-policy") + 1] == "allkeys-lru" and "--maxmemory" in cache
    env = every["seseragi"]["environment"]
    assert env["SESERAGI_REDIS_URL"].startswith("redis://redis:")
    assert env["SESERAGI_CACHE_REDIS_URL"].startswith("redis://redis-cache:")
    assert every["seseragi"]["depends_on"]["redis-cache"] == {"condition": "service_healthy"}
