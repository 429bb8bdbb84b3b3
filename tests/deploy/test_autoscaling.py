"""The autoscaler's metric is one the service exports, and what delivers it ships and is valid:
the pods' scrape annotations, the scrape job that labels series by pod, the Adapter's rule."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from seseragi.telemetry.metrics import Metrics
from tests.deploy import test_kubernetes
from tests.servers import REPO_ROOT

pytestmark = pytest.mark.unit
MONITORING = REPO_ROOT / "deploy" / "k8s" / "monitoring"
ADAPTER = MONITORING / "prometheus-adapter.values.yaml"
PROMETHEUS = MONITORING / "prometheus.yml"
Object = dict[str, Any]


def adapter_rules() -> list[Object]:
    rules: list[Object] = yaml.safe_load(ADAPTER.read_text())["rules"]["custom"]
    return rules


def series_name(rule: Object) -> str:
    found = re.match(r"\s*([a-zA-Z_:][a-zA-Z0-9_:]*)", rule["seriesQuery"])
    assert found, rule["seriesQuery"]
    return found.group(1)


def served_name(rule: Object) -> str | None:
    """The custom-metrics name the Adapter gives a series (Go's `${1}` is Python's `\\1`)."""
    pattern, replacement = rule["name"]["matches"], rule["name"]["as"]
    if not re.fullmatch(pattern, series_name(rule)):
        return None
    return re.sub(pattern, re.sub(r"\$\{(\d+)\}", r"\\\1", replacement), series_name(rule))


def hpa_metric_names(overlay: str) -> list[str]:
    hpa = test_kubernetes.find(overlay, "HorizontalPodAutoscaler", "seseragi")["spec"]
    return [m["pods"]["metric"]["name"] for m in hpa["metrics"] if m["type"] == "Pods"]


def exported_names() -> set[str]:
    registry = Metrics((1.0,), (1.0,)).registry
    return {metric.name for metric in registry.collect()}


@pytest.mark.parametrize("overlay", test_kubernetes.OVERLAYS)
def test_the_autoscaler_scales_on_what_the_adapter_serves_from_an_exported_metric(
    overlay: str,
) -> None:
    names = hpa_metric_names(overlay)
    assert names == ["seseragi_num_requests_waiting"]
    served = {served_name(rule): rule for rule in adapter_rules()}
    for name in names:
        assert name in served, f"no Prometheus Adapter rule serves {name}"
        assert series_name(served[name]) in exported_names()


def test_adapter_rules_map_the_labels_the_scrape_job_sets() -> None:
    job = yaml.safe_load(PROMETHEUS.read_text())["scrape_configs"][0]
    labels = {r["target_label"] for r in job["relabel_configs"] if "target_label" in r}
    for rule in adapter_rules():
        overrides = rule["resources"]["overrides"]
        assert {o["resource"] for o in overrides.values()} == {"namespace", "pod"}
        assert set(overrides) <= labels
        assert set(overrides) <= set(re.findall(r'(\w+)!=""', rule["seriesQuery"]))
        assert {"<<.Series>>", "<<.LabelMatchers>>", "<<.GroupBy>>"} <= set(
            re.findall(r"<<\.\w+>>", rule["metricsQuery"])
        )


@pytest.mark.parametrize("deployment", ["seseragi", "seseragi-worker"])
def test_the_scrape_job_keeps_the_pods_on_their_metrics_port(deployment: str) -> None:
    pod = test_kubernetes.find("cpu", "Deployment", deployment)["spec"]["template"]
    annotations = pod["metadata"]["annotations"]
    job = yaml.safe_load(PROMETHEUS.read_text())["scrape_configs"][0]
    keep = next(r for r in job["relabel_configs"] if r.get("action") == "keep")
    assert keep["source_labels"] == ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"]
    assert re.fullmatch(keep["regex"], annotations["prometheus.io/scrape"])
    ports = {p["containerPort"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
    assert int(annotations["prometheus.io/port"]) in ports
    assert job["kubernetes_sd_configs"][0]["namespaces"]["names"] == ["seseragi"]


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary is not None, "`make test` installs promtool (Debian package prometheus)"
    return subprocess.run([binary, *args], capture_output=True, text=True, check=False)


def test_the_scrape_config_passes_promtool(tmp_path: Path) -> None:
    """Everything but the discovery itself: Debian's promtool is built without Kubernetes service
    discovery, so a static target stands in for it; the relabelling is checked as shipped."""
    config = yaml.safe_load(PROMETHEUS.read_text())
    (job,) = config["scrape_configs"]
    assert job.pop("kubernetes_sd_configs")[0]["role"] == "pod"
    job["static_configs"] = [{"targets": ["10.0.0.1:9464"]}]
    # promtool reads rule_files relative to the config: the alert rules it names sit elsewhere.
    (tmp_path / "alerts.yml").write_text((REPO_ROOT / "deploy/prometheus/alerts.yml").read_text())
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    result = promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def adapter_query_as_rule(rule: Object) -> str:
    """The query the Adapter sends for one pod, as the Adapter fills its template."""
    return (
        rule["metricsQuery"]
        .replace("<<.Series>>", series_name(rule))
        .replace("<<.LabelMatchers>>", 'namespace="seseragi",pod=~"seseragi-.*"')
        .replace("<<.GroupBy>>", "pod")
    )


@pytest.mark.parametrize("broken", [False, True], ids=["shipped", "broken-query-is-caught"])
def test_the_adapter_queries_are_valid_promql(tmp_path: Path, broken: bool) -> None:
    exprs = [adapter_query_as_rule(rule) for rule in adapter_rules()]
    if broken:
        exprs = [expr.replace(") by (", ") by ((") for expr in exprs]
    rules = [{"record": "adapter:query", "expr": expr} for expr in exprs]
    groups = {"groups": [{"name": "adapter", "rules": rules}]}
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(groups))
    result = promtool("check", "rules", str(tmp_path / "rules.yml"))
    assert (result.returncode != 0) is broken, result.stdout + result.stderr
