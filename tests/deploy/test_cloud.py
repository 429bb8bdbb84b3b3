"""The cloud targets in deploy/cloud, parsed and held to what long gRPC streams need."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from seseragi.config import Settings
from seseragi.edge import deploy
from seseragi.runtime.app import SERVICE_NAME
from tests.deploy import dockerfile
from tests.servers import REPO_ROOT

pytestmark = pytest.mark.unit
CLOUD = REPO_ROOT / "deploy" / "cloud"
SETTINGS = {f"SESERAGI_{name.upper()}" for name in Settings.model_fields} | {"SESERAGI_REDIS_URL"}
DEFAULTS = Settings(_env_file=None)  # type: ignore[call-arg]
Object = dict[str, Any]


def load_json(name: str) -> Object:
    parsed: Object = json.loads((CLOUD / name).read_text())
    return parsed


def load_yaml(name: str) -> Object:
    parsed: Object = yaml.safe_load((CLOUD / name).read_text())
    return parsed


def ecs_container(task: Object, name: str) -> Object:
    found: Object = next(c for c in task["containerDefinitions"] if c["name"] == name)
    return found


def ecs_env(container: Object) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("environment", [])}


@pytest.mark.parametrize("name", ["aws/ecs-fargate-task.json", "aws/ecs-ec2-gpu-task.json"])
def test_ecs_tasks_health_check_like_the_image_and_outlast_the_drain(name: str) -> None:
    task = load_json(name)
    seseragi, envoy = ecs_container(task, "seseragi"), ecs_container(task, "envoy")
    _, image_check = dockerfile.healthcheck("cpu")
    check = seseragi["healthCheck"]
    assert check["command"] == ["CMD", *image_check]
    assert 60 <= check["startPeriod"] <= 300 and check["timeout"] < check["interval"]
    env = ecs_env(seseragi)
    assert set(env) | {s["name"] for s in seseragi["secrets"]} <= SETTINGS
    assert seseragi["stopTimeout"] > float(env["SESERAGI_SHUTDOWN_GRACE_SECONDS"])
    assert all(c["stopTimeout"] <= 120 for c in task["containerDefinitions"])  # ECS maximum
    assert envoy["dependsOn"] == [{"containerName": "seseragi", "condition": "HEALTHY"}]
    assert [p["appProtocol"] for p in envoy["portMappings"]] == ["grpc"]
    assert env["SESERAGI_HOST"] == "127.0.0.1"  # only the Envoy sidecar in the task reaches it
    assert {s["name"] for s in seseragi["secrets"]} == {
        "SESERAGI_REDIS_URL",
        "SESERAGI_EDGE_SECRET",
    }
    envoy_secrets = {s["name"]: s["valueFrom"] for s in envoy["secrets"]}
    assert "jwt" in envoy_secrets["ENVOY_JWKS"]  # graceful-envoy writes it where Envoy reads it
    edge_secret = next(s for s in seseragi["secrets"] if s["name"] == "SESERAGI_EDGE_SECRET")
    assert envoy_secrets["SESERAGI_EDGE_SECRET"] == edge_secret["valueFrom"]
    assert envoy["image"].split("/")[-1].startswith("seseragi-envoy:")


def test_fargate_runs_the_cpu_image_and_ec2_the_cuda_image_on_a_gpu() -> None:
    fargate, gpu = load_json("aws/ecs-fargate-task.json"), load_json("aws/ecs-ec2-gpu-task.json")
    assert fargate["requiresCompatibilities"] == ["FARGATE"] and fargate["networkMode"] == "awsvpc"
    assert ecs_container(fargate, "seseragi")["image"].endswith(":cpu")
    seseragi = ecs_container(gpu, "seseragi")
    assert gpu["requiresCompatibilities"] == ["EC2"]
    assert seseragi["image"].endswith(":cuda")
    assert seseragi["resourceRequirements"] == [{"type": "GPU", "value": "1"}]
    env = ecs_env(seseragi)
    assert (env["SESERAGI_DEVICE"], env["SESERAGI_QUANTIZATION"]) == ("cuda", "nf4")


def test_alb_target_group_speaks_grpc_and_keeps_streams_open() -> None:
    spec = load_json("aws/alb-grpc-target-group.json")
    group = spec["CreateTargetGroup"]
    assert group["ProtocolVersion"] == "GRPC"
    assert group["HealthCheckPath"] == "/grpc.health.v1.Health/Check"
    assert group["Matcher"] == {"GrpcCode": "0"}
    assert spec["Listener"]["Protocol"] == "HTTPS"  # ALB accepts gRPC on HTTPS listeners only
    attributes = {a["Key"]: a["Value"] for a in spec["TargetGroupAttributes"]}
    fargate = ecs_env(ecs_container(load_json("aws/ecs-fargate-task.json"), "seseragi"))
    drain = float(fargate["SESERAGI_SHUTDOWN_GRACE_SECONDS"])
    assert int(attributes["deregistration_delay.timeout_seconds"]) > drain
    idle = {a["Key"]: a["Value"] for a in spec["LoadBalancerAttributes"]}
    assert int(idle["idle_timeout.timeout_seconds"]) > 10 * DEFAULTS.heartbeat_interval_seconds


def test_cloud_run_is_http2_end_to_end_with_a_long_timeout() -> None:
    service = load_yaml("gcp/cloud-run-service.yaml")
    template = service["spec"]["template"]
    containers = {c["name"]: c for c in template["spec"]["containers"]}
    envoy, seseragi = containers["envoy"], containers["seseragi"]
    assert envoy["ports"] == [{"name": "h2c", "containerPort": 8080}]
    assert template["spec"]["timeoutSeconds"] >= 3600
    annotations = template["metadata"]["annotations"]
    assert int(annotations["autoscaling.knative.dev/minScale"]) >= 1
    assert annotations["run.googleapis.com/cpu-throttling"] == "false"
    assert json.loads(annotations["run.googleapis.com/container-dependencies"]) == {
        "envoy": ["seseragi"]
    }
    env = {e["name"]: e.get("value") for e in seseragi["env"]}
    assert set(env) <= SETTINGS and env["SESERAGI_HOST"] == "0.0.0.0"
    assert float(env["SESERAGI_SHUTDOWN_GRACE_SECONDS"]) < 10  # SIGKILL follows SIGTERM by 10 s
    assert template["spec"]["containerConcurrency"] == int(env["SESERAGI_MAX_RUNNING_REQUESTS"])
    assert seseragi["startupProbe"]["grpc"] == {"port": DEFAULTS.port, "service": SERVICE_NAME}
    assert seseragi["livenessProbe"]["grpc"]["service"] == ""
    assert envoy["startupProbe"]["grpc"] == {"port": 8080, "service": SERVICE_NAME}
    assert envoy["image"].split("/")[-1].startswith("seseragi-envoy:")
    secrets = [
        {e["name"]: e["valueFrom"] for e in c["env"] if "valueFrom" in e}["SESERAGI_EDGE_SECRET"]
        for c in (seseragi, envoy)
    ]
    assert secrets[0] == secrets[1] and "secretKeyRef" in secrets[0]


def test_azure_publishes_only_envoy_and_probes_with_the_health_command() -> None:
    group = load_yaml("azure/container-group.yaml")
    properties = group["properties"]
    assert [p["port"] for p in properties["ipAddress"]["ports"]] == [8080]
    containers = {c["name"]: c["properties"] for c in properties["containers"]}
    seseragi = containers["seseragi"]
    env = {e["name"]: e.get("value") for e in seseragi["environmentVariables"]}
    assert set(env) <= SETTINGS and env["SESERAGI_HOST"] == "127.0.0.1"
    _, image_check = dockerfile.healthcheck("cpu")
    assert seseragi["readinessProbe"]["exec"]["command"] == image_check
    assert seseragi["livenessProbe"]["exec"]["command"] == ["seseragi", "health"]
    envoy = containers["envoy"]
    assert envoy["image"].split("/")[-1].startswith("seseragi-envoy:")  # envoy/sidecar.Dockerfile
    (mount,) = envoy["volumeMounts"]
    assert mount["mountPath"] == str(deploy.JWKS.parent)
    volumes = {v["name"]: v for v in properties["volumes"]}
    assert set(volumes[mount["name"]]["secret"]) == {deploy.JWKS.name}
    secrets = [
        {e["name"]: e for e in c["environmentVariables"]}["SESERAGI_EDGE_SECRET"]
        for c in (seseragi, envoy)
    ]
    assert secrets[0] == secrets[1] and "secureValue" in secrets[0]
    redis = next(e for e in seseragi["environmentVariables"] if e["name"] == "SESERAGI_REDIS_URL")
    assert "secureValue" in redis and "value" not in redis


def test_the_sidecar_image_bakes_in_the_committed_sidecar_config() -> None:
    """What envoy/sidecar.Dockerfile copies is what `make envoy-deploy` renders for it."""
    text = (REPO_ROOT / "envoy" / "sidecar.Dockerfile").read_text()
    copies = dict(line.split()[1:3] for line in text.splitlines() if line.startswith("COPY "))
    target = deploy.TARGETS["sidecar"]
    assert copies[str(target.config.relative_to("envoy"))] == "/etc/envoy/envoy.yaml"
    assert copies[str(target.descriptor.relative_to("envoy"))] == str(deploy.DESCRIPTOR)
    assert (
        copies[str(deploy.GRACEFUL_ENVOY.relative_to("envoy"))] == "/usr/local/bin/graceful-envoy"
    )
    config = yaml.safe_load((REPO_ROOT / target.config).read_text())
    cluster = next(c for c in config["static_resources"]["clusters"] if c["name"] == "seseragi")
    endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert endpoint["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 50051}
