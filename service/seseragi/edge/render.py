"""Render Envoy's config from Settings: one source for local runs, tests and containers.

The template (envoy.yaml.j2 beside this module) ships as package data, and every output goes to
a directory the caller names: rendering works from an installed package as from the checkout.
"""

from __future__ import annotations

import base64
import ipaddress
import math
import os
import urllib.parse
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import jinja2

from seseragi.api import errors
from seseragi.edge import descriptor, ratelimit
from seseragi.edge.keys import dev_key, hs256_jwks
from seseragi.settings import Settings
from seseragi.subjects import RESERVED_SUBJECTS

TEMPLATE = "envoy.yaml.j2"  # package data of seseragi.edge
MAX_SUBJECTS = 100_000  # dynamic per-subject buckets Envoy keeps (least recently used go first)
SECRET_FROM_ENV = "%ENVIRONMENT(SESERAGI_EDGE_SECRET)%"


@dataclass(frozen=True, slots=True)
class Rendered:
    config: Path
    descriptor: Path


def token_bucket(requests_per_minute: int) -> dict[str, object]:
    """A bucket holding one minute's requests, refilled evenly (Envoy's fill interval >= 50 ms)."""
    if requests_per_minute <= 60:
        interval_s, per_fill = 60 / requests_per_minute, 1
    else:
        interval_s, per_fill = 1.0, math.ceil(requests_per_minute / 60)
    return {
        "max_tokens": requests_per_minute,
        "tokens_per_fill": per_fill,
        "fill_interval": f"{interval_s:.3f}s",
    }


def host_port(address: str) -> tuple[str, int]:
    host, _, port = address.strip().rpartition(":")
    return host.strip("[]"), int(port)


def upstreams(settings: Settings) -> list[tuple[str, int]]:
    return [host_port(address) for address in settings.edge_upstreams.split(",")]


def http_upstreams(settings: Settings) -> list[tuple[str, int]]:
    """The replicas' OpenAI HTTP API; none when the setting is empty."""
    return [host_port(a) for a in settings.edge_http_upstreams.split(",") if a.strip()]


# The OpenAI-compatible routes Envoy sends to the replicas' HTTP port.
OPENAI_PATHS = (
    {"match": "path", "value": "/v1/chat/completions"},
    {"match": "path", "value": "/v1/completions"},
    {"match": "path", "value": "/v1/models"},
    {"match": "prefix", "value": "/v1/models/"},
)


# A DNS name stands for every replica behind it (compose's service, Kubernetes' headless
# Service): the edge allows for as many as the autoscaler may start (deploy/k8s/base).
REPLICAS_PER_NAME = 8
HEALTH_REQUESTS = 128  # health checks through the edge at once: their own breaker (HIGH priority)


def circuit_breaker(settings: Settings, hosts: list[tuple[str, int]]) -> dict[str, int]:
    """Envoy sends the replicas at most what they take at once (running + queued + the RPC
    headroom each, as `seseragi serve` bounds itself), and lets as many wait for a connection;
    beyond that it refuses at the edge (RESOURCE_EXHAUSTED, HTTP 429)."""
    replicas = sum(1 if _is_ip(host) else REPLICAS_PER_NAME for host, _ in hosts)
    places = settings.max_running_requests + settings.max_queued_requests
    calls = replicas * (places + settings.rpc_headroom)
    return {
        "max_requests": calls,
        "max_pending_requests": calls,
        "health_requests": HEALTH_REQUESTS,
    }


def edge_full() -> dict[str, str]:
    """The gRPC status headers of the edge's own refusal (the -bin header base64, as gRPC's)."""
    status = errors.edge_full_status()
    details = base64.b64encode(status.SerializeToString()).decode()
    return {"message": status.message, "details": details}


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def jwt_providers(settings: Settings) -> list[dict[str, str]]:
    providers = []
    if settings.edge_dev_tokens:
        providers.append({"name": "dev_hs256", "inline": hs256_jwks(dev_key(settings.edge_dir))})
    if settings.edge_jwks_file is not None:
        providers.append({"name": "jwks", "filename": str(settings.edge_jwks_file.resolve())})
    if settings.edge_jwks_uri:
        providers.append({"name": "remote_jwks", "uri": settings.edge_jwks_uri})
    if not providers:
        raise ValueError(
            "no token issuer: set SESERAGI_EDGE_JWKS_FILE, SESERAGI_EDGE_JWKS_URI"
            " or SESERAGI_EDGE_DEV_TOKENS"
        )
    return providers


def jwks_issuer(settings: Settings) -> dict[str, object] | None:
    """The cluster Envoy fetches a remote JWKS through (TLS for https, as issuers serve it)."""
    if not settings.edge_jwks_uri:
        return None
    uri = urllib.parse.urlsplit(settings.edge_jwks_uri)
    if uri.scheme not in ("https", "http") or not uri.hostname:
        raise ValueError(f"SESERAGI_EDGE_JWKS_URI is not an http(s) URI: {settings.edge_jwks_uri}")
    tls = uri.scheme == "https"
    return {
        "host": uri.hostname,
        "port": uri.port or (443 if tls else 80),
        "tls": tls,
        "cache_s": settings.edge_jwks_cache_seconds,
    }


def listener_tls(settings: Settings) -> dict[str, str] | None:
    """The certificate and key the public listener presents; None: plaintext (a local run)."""
    cert, key = settings.edge_tls_cert_file, settings.edge_tls_key_file
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise ValueError(
            "TLS needs both SESERAGI_EDGE_TLS_CERT_FILE and SESERAGI_EDGE_TLS_KEY_FILE"
        )
    return {"cert": str(cert.resolve()), "key": str(key.resolve())}


def rate_limit_service(settings: Settings) -> dict[str, object] | None:
    """The global rate-limit service, when one is set: its address and the descriptor keys."""
    if not settings.edge_rate_limit_service:
        return None
    host, port = host_port(settings.edge_rate_limit_service)
    return {"host": host, "port": port, **ratelimit.descriptors()}


def render_text(
    settings: Settings, descriptor_path: Path, listen_address: str, *, secret_from_env: bool = False
) -> str:
    """Envoy's config; `secret_from_env` reads the edge secret from Envoy's environment instead
    of writing it into the file, so a committed container config holds no secret."""
    hosts = upstreams(settings)
    http_hosts = http_upstreams(settings)
    source = resources.files("seseragi.edge").joinpath(TEMPLATE).read_text()
    template = jinja2.Template(source, undefined=jinja2.StrictUndefined)
    # Header values are Envoy format strings: `%` is literal only when doubled.
    secret = SECRET_FROM_ENV if secret_from_env else settings.edge_secret.replace("%", "%%")
    text: str = template.render(
        listen_address=listen_address,
        listen_port=settings.edge_port,
        admin_port=settings.edge_admin_port,
        tls=listener_tls(settings),
        edge_secret=secret,
        jwks_issuer=jwks_issuer(settings),
        rate_limit_service=rate_limit_service(settings),
        upstreams=hosts,
        breaker=circuit_breaker(settings, hosts),
        http_breaker=circuit_breaker(settings, http_hosts),
        edge_full=edge_full(),
        cluster_type="STATIC" if all(_is_ip(h) for h, _ in hosts) else "STRICT_DNS",
        http_upstreams=http_hosts,
        http_cluster_type="STATIC" if all(_is_ip(h) for h, _ in http_hosts) else "STRICT_DNS",
        openai_paths=OPENAI_PATHS,
        jwt_providers=jwt_providers(settings),
        jwt_issuer=settings.edge_jwt_issuer,
        jwt_audience=settings.edge_jwt_audience,
        open_reflection=settings.edge_open_reflection,
        jwt_max_lifetime_s=settings.edge_jwt_max_lifetime,
        reserved_subjects=sorted(s for s in RESERVED_SUBJECTS if s),
        cors_origins=[o.strip() for o in settings.edge_cors_origins.split(",") if o.strip()],
        global_bucket=token_bucket(settings.edge_global_requests_per_minute),
        subject_bucket=token_bucket(settings.edge_requests_per_minute),
        health_bucket=token_bucket(settings.edge_health_requests_per_minute),
        max_subjects=MAX_SUBJECTS,
        descriptor=str(descriptor_path),
        request_headers_timeout_s=settings.edge_request_headers_timeout_seconds,
        request_timeout_s=settings.edge_request_timeout_seconds,
        stream_idle_timeout_s=max(30, math.ceil(6 * settings.heartbeat_interval_seconds)),
        max_request_bytes=settings.max_request_bytes,
        max_response_bytes=settings.max_response_bytes,
        buffer_limit_bytes=2 * max(settings.max_request_bytes, settings.max_response_bytes),
    )
    return text


def render(settings: Settings, out_dir: Path, listen_address: str = "127.0.0.1") -> Rendered:
    """Write envoy.yaml and the descriptor set it reads into `out_dir` (owner-only: it holds keys).

    `listen_address` is 127.0.0.1 locally and 0.0.0.0 inside a container.
    """
    if not settings.edge_secret:
        raise ValueError("SESERAGI_EDGE_SECRET must be set: Envoy proves the subject with it")
    out_dir.mkdir(parents=True, exist_ok=True)
    descriptor_path = descriptor.write(out_dir / descriptor.NAME)
    config = out_dir / "envoy.yaml"
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(render_text(settings, descriptor_path, listen_address))
    return Rendered(config, descriptor_path)
