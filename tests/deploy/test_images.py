"""Every image a deployment pulls is pinned to a version, and the compose files agree on one
Prometheus and one Grafana. (Offline, tags are checked, not digests: no registry is reachable
here to resolve them; add `@sha256:` where your mirror gives one, which this test accepts.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.deploy import dockerfile, test_kubernetes
from tests.servers import REPO_ROOT

pytestmark = pytest.mark.unit
COMPOSE_FILES = (
    REPO_ROOT / "docker-compose.yml",
    REPO_ROOT / "deploy" / "compose.observability.yaml",
)
DOCKERFILES = (REPO_ROOT / "Dockerfile", REPO_ROOT / "envoy" / "sidecar.Dockerfile")
FLOATING = re.compile(r"(^|-)(latest|master|main|stable|edge)$")
# A release (v1.40.0, 7.4.6-alpine, 3.11.14-slim-bookworm) or a commit tag (envoyproxy/ratelimit).
PINNED = re.compile(r"^v?\d+\.\d+\.\d+([.-][\w.-]+)?$|^[0-9a-f]{8,40}$")


def compose_images(path: Path) -> dict[str, str]:
    services = yaml.safe_load(path.read_text())["services"]
    return {name: spec["image"] for name, spec in services.items() if "image" in spec}


def dockerfile_parents(path: Path) -> list[str]:
    pairs = dockerfile.instructions(path.read_text())
    args = dict(a.split("=", 1) for k, a in pairs if k == "ARG" and "=" in a)
    parents = [a.split()[0] for k, a in pairs if k == "FROM"]
    stages = {a.split()[-1] for k, a in pairs if k == "FROM" and " AS " in a.upper()}
    resolved = [re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], p) for p in parents]
    return [p for p in resolved if p not in stages]


def every_image() -> list[str]:
    images = [i for path in COMPOSE_FILES for i in compose_images(path).values()]
    for overlay in test_kubernetes.OVERLAYS:
        for obj in test_kubernetes.render(overlay):
            pod = obj.get("spec", {}).get("template", {}).get("spec", {})
            images += [
                c["image"] for c in pod.get("containers", []) + pod.get("initContainers", [])
            ]
    return images + [p for path in DOCKERFILES for p in dockerfile_parents(path)]


def is_ours(image: str) -> bool:
    """Seseragi's own images, which its build tags (cpu, cuda) rather than a registry's release."""
    return image.rsplit("/", 1)[-1].split(":")[0] in ("seseragi", "seseragi-envoy")


def tag(image: str) -> str:
    name = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return name.partition(":")[2]


def test_every_third_party_image_is_pinned_to_a_version() -> None:
    images = sorted({i for i in every_image() if not is_ours(i)})
    assert len(images) >= 8 and any(i.startswith("envoyproxy/ratelimit:") for i in images)
    loose = [i for i in images if FLOATING.search(tag(i)) or not PINNED.match(tag(i))]
    assert loose == []


@pytest.mark.parametrize(
    "image",
    [
        "envoyproxy/ratelimit:master",
        "envoyproxy/envoy:v1.40-latest",
        "redis:7.4-alpine",
        "prom/prometheus",
        "python:3.11-slim",
    ],
)
def test_a_floating_tag_is_caught(image: str) -> None:
    assert FLOATING.search(tag(image)) or not PINNED.match(tag(image))


@pytest.mark.parametrize("product", ["prom/prometheus", "grafana/grafana"])
def test_the_compose_files_run_one_version_of_prometheus_and_grafana(product: str) -> None:
    used = {
        i
        for path in COMPOSE_FILES
        for i in compose_images(path).values()
        if i.startswith(f"{product}:")
    }
    assert len(used) == 1, used
