"""No manifest exposes a replica to the public without Envoy in front, and every one makes a
replica refuse to start without the edge secret (SESERAGI_REQUIRE_EDGE_SECRET). A replica's
gRPC and OpenAI HTTP ports are where Envoy's committed config sends calls, and public in none."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from seseragi.api.identity import is_loopback
from seseragi.edge import deploy
from tests.deploy import dockerfile, test_kubernetes
from tests.servers import REPO_ROOT

pytestmark = pytest.mark.unit
CLOUD = REPO_ROOT / "deploy" / "cloud"
ENVOY_PORT = 8080
Object = dict[str, Any]


def test_the_image_refuses_to_start_without_an_edge_secret() -> None:
    for target in ("cpu", "cuda"):
        assert dockerfile.env(target)["SESERAGI_REQUIRE_EDGE_SECRET"] == "true"


def test_compose_publishes_no_replica_and_requires_the_secret() -> None:
    services = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())["services"]
    replicas = {n: s for n, s in services.items() if s.get("command") == ["serve"]}
    assert set(replicas) == {"seseragi", "seseragi-gpu"}
    for service in replicas.values():
        assert "ports" not in service
        assert service["environment"]["SESERAGI_REQUIRE_EDGE_SECRET"] == "true"


@pytest.mark.parametrize("overlay", test_kubernetes.OVERLAYS)
def test_kubernetes_exposes_only_envoy_and_requires_the_secret(overlay: str) -> None:
    objects = test_kubernetes.render(overlay)
    public = [
        o
        for o in objects
        if o["kind"] == "Service" and o["spec"].get("type") in ("LoadBalancer", "NodePort")
    ]
    assert [s["spec"]["selector"]["app.kubernetes.io/name"] for s in public] == ["envoy"]
    assert not [o for o in objects if o["kind"] == "Ingress"]
    assert test_kubernetes.settings_env(overlay)["SESERAGI_REQUIRE_EDGE_SECRET"] == "true"


@pytest.mark.parametrize("name", ["aws/ecs-fargate-task.json", "aws/ecs-ec2-gpu-task.json"])
def test_ecs_replicas_listen_on_the_task_loopback_behind_envoy(name: str) -> None:
    task = json.loads((CLOUD / name).read_text())
    containers = {c["name"]: c for c in task["containerDefinitions"]}
    env = {e["name"]: e["value"] for e in containers["seseragi"]["environment"]}
    assert is_loopback(env["SESERAGI_HOST"]) and env["SESERAGI_REQUIRE_EDGE_SECRET"] == "true"
    assert [p["containerPort"] for p in containers["envoy"]["portMappings"]] == [ENVOY_PORT]


def test_azure_publishes_only_envoy_and_its_replica_listens_on_loopback() -> None:
    group = yaml.safe_load((CLOUD / "azure" / "container-group.yaml").read_text())
    properties = group["properties"]
    assert [p["port"] for p in properties["ipAddress"]["ports"]] == [ENVOY_PORT]
    seseragi = next(c for c in properties["containers"] if c["name"] == "seseragi")
    env = {e["name"]: e.get("value") for e in seseragi["properties"]["environmentVariables"]}
    assert is_loopback(env["SESERAGI_HOST"]) and env["SESERAGI_REQUIRE_EDGE_SECRET"] == "true"


def test_cloud_run_routes_only_to_envoy_or_is_private() -> None:
    service = yaml.safe_load((CLOUD / "gcp" / "cloud-run-service.yaml").read_text())
    containers = service["spec"]["template"]["spec"]["containers"]
    ingress = [c for c in containers if c.get("ports")]  # Cloud Run routes to this one only
    public = service["metadata"]["annotations"]["run.googleapis.com/ingress"] == "all"
    if public:
        assert len(ingress) == 1 and ingress[0]["image"].split("/")[-1].startswith(
            "seseragi-envoy:"
        )
        assert ingress[0]["ports"][0]["containerPort"] == ENVOY_PORT
    seseragi = next(c for c in containers if c.get("args") == ["serve"])
    env = {e["name"]: e.get("value") for e in seseragi["env"]}
    assert env["SESERAGI_REQUIRE_EDGE_SECRET"] == "true"


def upstream_ports(target: str) -> dict[str, int]:
    """The port each of Envoy's replica clusters (gRPC, OpenAI HTTP) sends to, in a target's
    committed config."""
    config = yaml.safe_load((REPO_ROOT / deploy.TARGETS[target].config).read_text())
    ports = {}
    for cluster in config["static_resources"]["clusters"]:
        if cluster["name"] in ("seseragi", "seseragi_http"):
            (endpoint,) = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
            ports[cluster["name"]] = endpoint["endpoint"]["address"]["socket_address"]["port_value"]
    return ports


def replica_ports(env: dict[str, str]) -> dict[str, int]:
    """The ports a replica serves, under the names of the Envoy clusters that reach them."""
    return {"seseragi": int(env["SESERAGI_PORT"]), "seseragi_http": int(env["SESERAGI_HTTP_PORT"])}


@pytest.mark.parametrize("name", ["aws/ecs-fargate-task.json", "aws/ecs-ec2-gpu-task.json"])
def test_ecs_replicas_serve_http_where_the_sidecar_sends_it_and_only_on_loopback(name: str) -> None:
    task = json.loads((CLOUD / name).read_text())
    containers = {c["name"]: c for c in task["containerDefinitions"]}
    seseragi = containers["seseragi"]
    ports = replica_ports({e["name"]: e["value"] for e in seseragi["environment"]})
    assert ports == upstream_ports("sidecar")
    assert sorted(p["containerPort"] for p in seseragi["portMappings"]) == sorted(ports.values())
    assert [p["containerPort"] for p in containers["envoy"]["portMappings"]] == [ENVOY_PORT]


def test_azure_replica_serves_http_where_the_sidecar_sends_it_and_publishes_neither() -> None:
    properties = yaml.safe_load((CLOUD / "azure" / "container-group.yaml").read_text())[
        "properties"
    ]
    seseragi = next(c for c in properties["containers"] if c["name"] == "seseragi")["properties"]
    ports = replica_ports({e["name"]: e.get("value") for e in seseragi["environmentVariables"]})
    assert ports == upstream_ports("sidecar")
    assert sorted(p["port"] for p in seseragi["ports"]) == sorted(ports.values())
    assert not set(ports.values()) & {p["port"] for p in properties["ipAddress"]["ports"]}


def test_cloud_run_replica_serves_http_where_the_sidecar_sends_it_and_routes_neither() -> None:
    service = yaml.safe_load((CLOUD / "gcp" / "cloud-run-service.yaml").read_text())
    containers = service["spec"]["template"]["spec"]["containers"]
    seseragi = next(c for c in containers if c.get("args") == ["serve"])
    assert replica_ports({e["name"]: e.get("value") for e in seseragi["env"]}) == upstream_ports(
        "sidecar"
    )
    assert "ports" not in seseragi  # Cloud Run routes only to the ingress container (Envoy)


@pytest.mark.parametrize("overlay", test_kubernetes.OVERLAYS)
def test_kubernetes_serves_http_to_envoy_alone_like_grpc(overlay: str) -> None:
    ports = replica_ports(test_kubernetes.settings_env(overlay))
    assert ports == upstream_ports("k8s")
    pod = test_kubernetes.container(overlay, "seseragi")
    assert set(ports.values()) <= {p["containerPort"] for p in pod["ports"]}
    service = test_kubernetes.find(overlay, "Service", "seseragi")["spec"]
    assert service["clusterIP"] == "None" and "type" not in service
    assert set(ports.values()) <= {p["port"] for p in service["ports"]}
    policy = test_kubernetes.find(overlay, "NetworkPolicy", "seseragi-from-envoy-only")["spec"]
    for port in ports.values():
        (rule,) = [r for r in policy["ingress"] if port in {p["port"] for p in r["ports"]}]
        assert rule["from"] == [
            {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "envoy"}}}
        ]


def test_compose_serves_http_to_the_network_alone_like_grpc() -> None:
    services = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())["services"]
    for name in ("seseragi", "seseragi-gpu"):
        ports = replica_ports(services[name]["environment"])
        assert ports == upstream_ports("compose")
        assert {str(p) for p in ports.values()} <= set(services[name]["expose"])
        assert "ports" not in services[name]
