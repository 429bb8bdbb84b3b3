"""Envoy's config for containers, rendered into a checkout of the repository and committed.

Compose and Kubernetes run the official Envoy image beside `envoyproxy/ratelimit`, so they differ
from a local run in what lives where: replicas and the rate-limit service by DNS name, the
descriptor set and the JWKS as mounted files, the edge secret from Envoy's environment (never in
the file), and limits counted by the rate-limit service so they hold across Envoy replicas. The
sidecar variant (ECS, Azure Container Instances) runs one Envoy per task in front of the service
on the task's loopback, with its own token buckets. The checkout to write into is named by the
caller (`seseragi envoy render --target`: the working directory), never found from this file.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from seseragi.api.identity import is_loopback
from seseragi.edge import descriptor, ratelimit, render
from seseragi.settings import Settings

CONFIG_DIR = Path("/etc/envoy")  # where both targets mount the files below inside the container
DESCRIPTOR = CONFIG_DIR / "seseragi.binpb"
JWKS = CONFIG_DIR / "jwt" / "jwks.json"
# The listener's certificate: a kubernetes.io/tls Secret's keys, mounted (compose: a directory).
TLS_CERT = CONFIG_DIR / "tls" / "tls.crt"
TLS_KEY = CONFIG_DIR / "tls" / "tls.key"
UPSTREAM = "seseragi:50051"  # compose service / headless Kubernetes Service: every replica
RATE_LIMIT_SERVICE = "ratelimit:8081"
SIDECAR_UPSTREAM = "127.0.0.1:50051"  # the service in the same task, on its loopback
HTTP_UPSTREAM = "seseragi:8000"  # the replicas' OpenAI-compatible HTTP API
SIDECAR_HTTP_UPSTREAM = "127.0.0.1:8000"
# Envoy exits at once on SIGTERM; containers run it through this wrapper, which drains first.
GRACEFUL_ENVOY = Path("envoy/bin/graceful-envoy")


@dataclass(frozen=True, slots=True)
class Target:
    """Where one deployment's files live, relative to the repository root."""

    config: Path
    descriptor: Path
    rules: Path | None  # the global rate-limit service's rules; None: Envoy's own buckets
    wrapper: Path = GRACEFUL_ENVOY  # compose mounts the original; kustomize needs a copy
    upstream: str = UPSTREAM
    http_upstream: str = HTTP_UPSTREAM
    # Envoy terminates TLS itself; False where the platform's load balancer already does (Cloud
    # Run, an ALB) and forwards cleartext HTTP/2 to the task.
    tls: bool = True


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
        wrapper=Path("deploy/k8s/base/envoy/graceful-envoy"),
    ),
    # Baked into the sidecar image (envoy/sidecar.Dockerfile) that deploy/cloud runs.
    "sidecar": Target(
        config=Path("envoy/rendered/envoy.sidecar.yaml"),
        descriptor=Path("envoy/rendered/seseragi.binpb"),
        rules=None,
        upstream=SIDECAR_UPSTREAM,
        http_upstream=SIDECAR_HTTP_UPSTREAM,
        tls=False,
    ),
}


def container_settings(settings: Settings, target: Target | None = None) -> Settings:
    """The limits, issuer and CORS of `settings`, with a container's addresses and files.

    Development tokens are off (their key is on a developer's disk); tokens are checked against
    the mounted JWKS, or the remote one when SESERAGI_EDGE_JWKS_URI is set. The listener speaks
    TLS with the mounted certificate where the target terminates it. Development origins
    (localhost, loopback) are dropped from CORS: no page on a visitor's own machine may call.
    """
    target = target or TARGETS["compose"]
    origins = [o.strip() for o in settings.edge_cors_origins.split(",") if o.strip()]
    return settings.model_copy(
        update={
            "edge_cors_origins": ",".join(o for o in origins if not is_development_origin(o)),
            "edge_upstreams": target.upstream,
            "edge_http_upstreams": target.http_upstream,
            "edge_rate_limit_service": RATE_LIMIT_SERVICE if target.rules else None,
            "edge_dev_tokens": False,
            "edge_jwks_file": None if settings.edge_jwks_uri else JWKS,
            "edge_tls_cert_file": TLS_CERT if target.tls else None,
            "edge_tls_key_file": TLS_KEY if target.tls else None,
        }
    )


def is_development_origin(origin: str) -> bool:
    """An origin served from the visitor's own machine (http://localhost:3000 and the like)."""
    host = urllib.parse.urlsplit(origin).hostname or ""
    return host == "localhost" or host.endswith(".localhost") or is_loopback(host)


def config_text(settings: Settings, target: Target | None = None) -> str:
    return render.render_text(
        container_settings(settings, target), DESCRIPTOR, "0.0.0.0", secret_from_env=True
    )


def render_target(settings: Settings, name: str, root: Path) -> Target:
    """Write target `name`'s Envoy config, descriptor set and rate-limit rules under `root`, a
    checkout of the repository (whose wrapper, envoy/bin/graceful-envoy, a target may copy)."""
    target = TARGETS[name]
    original = root / GRACEFUL_ENVOY
    if not original.is_file():
        raise FileNotFoundError(f"{root.resolve()} is no checkout of the repository: no {original}")
    files = {target.config: config_text(settings, target)}
    if target.rules is not None:
        files[target.rules] = ratelimit.service_config_text(settings)
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    descriptor.write(root / target.descriptor)
    wrapper = root / target.wrapper
    if target.wrapper != GRACEFUL_ENVOY:  # a copy, where the original cannot be mounted
        wrapper.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(original, wrapper)
    # Read by Envoy's own user in the container; nothing secret is in these files.
    for relative in (*files, target.descriptor):
        os.chmod(root / relative, 0o644)
    os.chmod(wrapper, 0o755)
    return dataclasses.replace(
        target,
        config=root / target.config,
        descriptor=root / target.descriptor,
        rules=None if target.rules is None else root / target.rules,
        wrapper=wrapper,
    )
