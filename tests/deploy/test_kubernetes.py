"""deploy/k8s rendered by kustomize (kubectl's own) and checked against Kubernetes 1.37 schemas."""

from __future__ import annotations

import base64
import copy
import subprocess
import sys
from functools import cache
from typing import Any

import kubernetes_validate
import pytest
import yaml

from seseragi.config import Settings
from seseragi.edge import deploy
from seseragi.runtime.app import SERVICE_NAME
from tests.deploy import dockerfile
from tests.servers import REPO_ROOT

pytestmark = pytest.mark.unit
KUBERNETES_VERSION = "1.37.0"
OVERLAYS = ("cpu", "gpu")
Object = dict[str, Any]


@cache
def render(overlay: str) -> tuple[Object, ...]:
    kubectl = f"{sys.executable.rsplit('/', 1)[0]}/kubectl"
    result = subprocess.run(
        [kubectl, "kustomize", str(REPO_ROOT / "deploy" / "k8s" / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return tuple(yaml.safe_load_all(result.stdout))


def find(overlay: str, kind: str, name: str) -> Object:
    matches = [o for o in render(overlay) if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, (kind, name)
    return copy.deepcopy(matches[0])


def container(overlay: str, deployment: str) -> Object:
    pod = find(overlay, "Deployment", deployment)["spec"]["template"]["spec"]
    first: Object = pod["containers"][0]
    return first


def settings_env(overlay: str) -> dict[str, str]:
    data: dict[str, str] = find(overlay, "ConfigMap", "seseragi-settings")["data"]
    return data


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_object_is_valid_for_kubernetes(overlay: str) -> None:
    objects = render(overlay)
    assert len(objects) >= 15
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        assert obj["metadata"].get("namespace", "seseragi") == "seseragi"


def test_the_validator_rejects_a_misspelt_field() -> None:
    broken = find("cpu", "Deployment", "seseragi")
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_ask_the_grpc_health_service(overlay: str) -> None:
    seseragi = container(overlay, "seseragi")
    port = int(settings_env(overlay)["SESERAGI_PORT"])
    readiness, liveness = seseragi["readinessProbe"]["grpc"], seseragi["livenessProbe"]["grpc"]
    assert readiness == {"port": port, "service": SERVICE_NAME}
    assert liveness == {"port": port, "service": ""}
    startup = seseragi["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120  # time to load the model


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_termination_grace_outlasts_pre_stop_and_drain(overlay: str) -> None:
    pod = find(overlay, "Deployment", "seseragi")["spec"]["template"]["spec"]
    drain = float(settings_env(overlay)["SESERAGI_SHUTDOWN_GRACE_SECONDS"])
    pre_stop = pod["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > pre_stop + drain


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_settings_are_real_settings_and_the_image_runs_as_its_user(overlay: str) -> None:
    fields = {f"SESERAGI_{name.upper()}" for name in Settings.model_fields}
    later = {"SESERAGI_REDIS_URL"}  # from the Redis branch
    assert set(settings_env(overlay)) <= fields | later
    pod = find(overlay, "Deployment", "seseragi")["spec"]["template"]["spec"]
    uid = dockerfile.values("cpu", "USER")[-1].split(":")[0]
    assert (
        pod["securityContext"]["runAsUser"] == int(uid) and pod["securityContext"]["runAsNonRoot"]
    )


def test_gpu_overlay_asks_for_a_gpu_the_cuda_image_and_nf4() -> None:
    seseragi = container("gpu", "seseragi")
    assert seseragi["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert seseragi["image"].endswith(":cuda")
    env = settings_env("gpu")
    assert (env["SESERAGI_DEVICE"], env["SESERAGI_QUANTIZATION"]) == ("cuda", "nf4")
    cpu = container("cpu", "seseragi")
    assert cpu["image"].endswith(":cpu") and "nvidia.com/gpu" not in cpu["resources"]["limits"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_scaling_and_disruption_keep_the_service_up(overlay: str) -> None:
    hpa = find(overlay, "HorizontalPodAutoscaler", "seseragi")["spec"]
    assert hpa["scaleTargetRef"]["name"] == "seseragi" and hpa["minReplicas"] >= 2
    assert hpa["metrics"][0]["pods"]["metric"]["name"] == "seseragi_num_requests_waiting"
    pdb = find(overlay, "PodDisruptionBudget", "seseragi")["spec"]
    assert pdb["minAvailable"] >= 1
    strategy = find(overlay, "Deployment", "seseragi")["spec"]["strategy"]["rollingUpdate"]
    assert strategy["maxUnavailable"] == 0


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_envoy_reaches_the_service(overlay: str) -> None:
    policies = [o for o in render(overlay) if o["kind"] == "NetworkPolicy"]
    deny = [p for p in policies if p["spec"]["podSelector"] == {}]
    assert deny and "ingress" not in deny[0]["spec"]  # everything denied unless allowed below
    service_policy = find(overlay, "NetworkPolicy", "seseragi-from-envoy-only")["spec"]
    grpc_rule = next(r for r in service_policy["ingress"] if r["ports"][0]["port"] == 50051)
    assert grpc_rule["from"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "envoy"}}}
    ]
    selecting_service = [
        p
        for p in policies
        if p["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name")
        == "seseragi"
    ]
    assert len(selecting_service) == 1


def generated(overlay: str, referenced: str, prefix: str) -> Object:
    """The ConfigMap a Deployment names: kustomize's generator adds a content hash to the name."""
    assert referenced.startswith(f"{prefix}-"), referenced
    return find(overlay, "ConfigMap", referenced)


def secret_env(container: Object) -> dict[str, tuple[str, str]]:
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    return {name: (ref["name"], ref["key"]) for name, ref in refs.items()}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_envoy_runs_the_rendered_config_with_its_descriptor_set_and_jwks(overlay: str) -> None:
    """The ConfigMap holds the files `make envoy-deploy` rendered, mounted where they name."""
    target = deploy.TARGETS["k8s"]
    envoy = find(overlay, "Deployment", "envoy")["spec"]["template"]["spec"]
    (mount,) = envoy["containers"][0]["volumeMounts"]
    assert mount["mountPath"] == str(deploy.CONFIG_DIR)
    sources = next(v for v in envoy["volumes"] if v["name"] == mount["name"])["projected"]
    config_map, secret, tls = (s.get("configMap") or s["secret"] for s in sources["sources"])
    envoy_config = generated(overlay, config_map["name"], "envoy-config")
    assert envoy_config["data"]["envoy.yaml"] == (REPO_ROOT / target.config).read_text()
    wrapper = envoy_config["data"]["graceful-envoy"]
    assert wrapper == (REPO_ROOT / deploy.GRACEFUL_ENVOY).read_text()
    wrapped = ["/bin/bash", f"{deploy.CONFIG_DIR}/graceful-envoy"]
    assert envoy["containers"][0]["args"][:2] == wrapped
    descriptor = base64.b64decode(envoy_config["binaryData"]["seseragi.binpb"])
    assert descriptor == (REPO_ROOT / target.descriptor).read_bytes()
    jwks = deploy.JWKS.relative_to(deploy.CONFIG_DIR)
    assert secret["name"] == "seseragi-jwt-jwks"
    assert secret["items"] == [{"key": "jwks.json", "path": str(jwks)}]
    assert "optional" not in secret  # no JWKS, no Envoy: never one that lets tokens through
    tls_files = [deploy.TLS_CERT, deploy.TLS_KEY]
    assert tls["name"] == "seseragi-edge-tls" and "optional" not in tls  # never plaintext
    assert tls["items"] == [
        {"key": f.name, "path": str(f.relative_to(deploy.CONFIG_DIR))} for f in tls_files
    ]
    edge_secret = ("seseragi-edge", "secret")
    assert secret_env(envoy["containers"][0]) == {"SESERAGI_EDGE_SECRET": edge_secret}
    assert secret_env(container(overlay, "seseragi")) == {"SESERAGI_EDGE_SECRET": edge_secret}
    ports = {p["containerPort"] for p in envoy["containers"][0]["ports"]}
    assert ports == {8080}  # the admin listens on the pod's loopback only
    ratelimit = find(overlay, "Deployment", "ratelimit")["spec"]["template"]["spec"]
    rules = generated(overlay, ratelimit["volumes"][0]["configMap"]["name"], "ratelimit-config")
    assert rules["data"] == {"config.yaml": (REPO_ROOT / target.rules).read_text()}


def test_envoy_gateway_mounts_its_config_and_redis_keeps_an_append_only_file() -> None:
    envoy = find("cpu", "Deployment", "envoy")["spec"]["template"]["spec"]
    assert envoy["containers"][0]["image"].startswith("envoyproxy/envoy:v1.40")
    redis = find("cpu", "StatefulSet", "redis")["spec"]["template"]["spec"]["containers"][0]
    assert redis["args"][redis["args"].index("--appendonly") + 1] == "yes"
    service = find("cpu", "Service", "seseragi")["spec"]
    assert service["clusterIP"] == "None"  # Envoy balances per call over every pod


def sources(overlay: str, policy: str) -> set[str]:
    rules = find(overlay, "NetworkPolicy", policy)["spec"]["ingress"]
    return {
        peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for peer in rules[0]["from"]
    }


def test_rate_limits_are_reached_from_envoy_and_redis_from_its_clients_only() -> None:
    assert sources("cpu", "ratelimit-from-envoy") == {"envoy"}
    assert sources("cpu", "redis-from-seseragi") == {"seseragi", "seseragi-worker", "ratelimit"}
    ratelimit = container("cpu", "ratelimit")
    env = {e["name"]: e["value"] for e in ratelimit["env"]}
    assert env["REDIS_URL"] == "redis:6379"
    assert ratelimit["volumeMounts"][0]["mountPath"] == "/data/ratelimit/config"


def redis_args(kind: str, name: str) -> list[str]:
    pod = find("cpu", kind, name)["spec"]["template"]["spec"]
    args: list[str] = pod["containers"][0]["args"]
    return args


def test_the_job_redis_never_evicts_and_the_cache_redis_evicts_only_cache() -> None:
    jobs, cache = redis_args("StatefulSet", "redis"), redis_args("Deployment", "redis-cache")
    assert jobs[jobs.index("--maxmemory-policy") + 1] == "noeviction" and "--maxmemory" in jobs
    assert cache[cache.index("--maxmemory-policy") + 1] == "allkeys-lru" and "--maxmemory" in cache
    assert settings_env("cpu")["SESERAGI_CACHE_REDIS_URL"] == "redis://redis-cache:6379/0"
    assert sources("cpu", "redis-cache-from-seseragi") == {"seseragi"}
