"""Envoy's config for docker compose and Kubernetes, rendered into the repository and committed.

Both run the official Envoy image beside `envoyproxy/ratelimit`, so they differ from a local run
in what lives where: replicas and the rate-limit service by DNS name, the descriptor set and the
JWKS as mounted files, the edge secret from Envoy's environment (never in the file), and limits
counted by the rate-limit service so they hold across Envoy replicas.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from seseragi.config import Settings
from seseragi.edge import descriptor, ratelimit, render

REPO = Path(__file__).resolve().parents[3]
CONFIG_DIR = Path("/etc/envoy")  # where both targets mount the files below inside the container
DESCRIPTOR = CONFIG_DIR / "seseragi.binpb"
JWKS = CONFIG_DIR / "jwt" / "jwks.json"
UPSTREAM = "seseragi:50051"  # compose service / headless Kubernetes Service: every replica
RATE_LIMIT_SERVICE = "ratelimit:8081"


@dataclass(frozen=True, slots=True)
class Target:
    """Where one deployment's files live, relative to the repository root."""

    config: Path
    descriptor: Path
    rules: Path


TARGETS = {
    "compose": Target(
        config=Path("envoy/rendered/envoy.compose.yaml"),
        descriptor=Path("envoy/rendered/seseragi.binpb"),
        rules=Path("envoy/ratelimit/config.yaml"),
    ),
    # Under the kustomize base, whose configMapGenerator may only read files beneath it.
    "k8s": Target(
        config=Path("deploy/k8s/base/envoy/envoy.yaml"),
        descriptor=Path("deploy/k8s/base/envoy/seseragi.binpb"),
        rules=Path("deploy/k8s/base/envoy/ratelimit.yaml"),
    ),
}


def container_settings(settings: Settings) -> Settings:
    """The limits, issuer and CORS of `settings`, with a container's addresses and files.

    Development tokens are off (their key is on a developer's disk); tokens are checked against
    the mounted JWKS, or the remote one when SESERAGI_EDGE_JWKS_URI is set.
    """
    return settings.model_copy(
        update={
            "edge_upstreams": UPSTREAM,
            "edge_rate_limit_service": RATE_LIMIT_SERVICE,
            "edge_dev_tokens": False,
            "edge_jwks_file": None if settings.edge_jwks_uri else JWKS,
        }
    )


def config_text(settings: Settings) -> str:
    return render.render_text(
        container_settings(settings), DESCRIPTOR, "0.0.0.0", secret_from_env=True
    )


def render_target(settings: Settings, name: str, root: Path = REPO) -> Target:
    """Write target `name`'s Envoy config, descriptor set and rate-limit rules under `root`."""
    target = TARGETS[name]
    files = {
        target.config: config_text(settings),
        target.rules: ratelimit.service_config_text(settings),
    }
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    descriptor.build(root / target.descriptor)
    # Read by Envoy's own user in the container; nothing secret is in these files.
    for relative in (*files, target.descriptor):
        os.chmod(root / relative, 0o644)
    return Target(root / target.config, root / target.descriptor, root / target.rules)
