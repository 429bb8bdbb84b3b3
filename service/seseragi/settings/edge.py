"""The edge: Envoy in front of the service, rendered by `seseragi envoy render` and `stack`."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from seseragi.settings.base import SeseragiSettings


class EdgeSettings(SeseragiSettings):
    edge_port: int = Field(8080, ge=0, le=65535, description="Envoy's listener port.")
    edge_admin_port: int = Field(9901, ge=0, le=65535, description="Envoy's admin port (loopback).")
    edge_tls_cert_file: Path | None = Field(
        None,
        description="PEM certificate chain Envoy presents on its listener; with the key set, the"
        " listener speaks TLS only (ALPN h2, http/1.1). Unset: plaintext (a local run).",
    )
    edge_tls_key_file: Path | None = Field(
        None, description="PEM private key of SESERAGI_EDGE_TLS_CERT_FILE."
    )
    edge_upstreams: str = Field(
        "127.0.0.1:50051",
        description="Comma-separated host:port of the service replicas (`make run` sets it).",
    )
    edge_http_upstreams: str = Field(
        "127.0.0.1:8000",
        description="Comma-separated host:port of the replicas' OpenAI HTTP API (empty: the edge"
        " serves no /v1/chat/completions, /v1/completions or /v1/models).",
    )
    edge_replicas: int = Field(
        1, ge=1, le=8, description="Replicas `seseragi stack` starts, on SESERAGI_PORT and up."
    )
    edge_jwt_issuer: str = Field("seseragi-dev", description="Required `iss` claim.")
    edge_jwt_audience: str = Field("seseragi", description="Required `aud` claim.")
    edge_jwt_max_lifetime: int = Field(
        86400,
        ge=1,
        description="Seconds a token may still be valid for (its `exp` from now); tokens without"
        " `exp` or beyond this are refused at the edge.",
    )
    edge_dev_tokens: bool = Field(
        True, description="Accept HS256 tokens signed with the local development key."
    )
    edge_jwks_file: Path | None = Field(
        None, description="JWKS file of RS256/ES256 public keys Envoy accepts."
    )
    edge_jwks_uri: str = Field(
        "",
        description="HTTPS URI of the issuer's JWKS (production); Envoy fetches and caches it.",
    )
    edge_jwks_cache_seconds: int = Field(
        600, ge=1, description="How long Envoy keeps a fetched remote JWKS."
    )
    edge_rate_limit_service: str = Field(
        "",
        description="host:port of an envoyproxy/ratelimit service; set: the edge limits hold"
        " across Envoy replicas (global filter) instead of per Envoy (local buckets).",
    )
    edge_requests_per_minute: int = Field(
        60, ge=1, description="Token bucket per subject at the edge (also the burst)."
    )
    edge_global_requests_per_minute: int = Field(
        6000, ge=1, description="Token bucket shared by all callers at the edge."
    )
    edge_health_requests_per_minute: int = Field(
        120,
        ge=1,
        description="Token bucket per source address for health checks at the edge (they need no"
        " token, so they have their own budget and never spend the callers').",
    )
    edge_request_headers_timeout_seconds: float = Field(
        10.0, gt=0, description="Time a client has to send a request's headers (slowloris)."
    )
    edge_request_timeout_seconds: float = Field(
        60.0,
        gt=0,
        description="Time a client has to send a whole request; stops once the response begins,"
        " so it never cuts a stream.",
    )
    edge_cors_origins: str = Field(
        "http://localhost:3000",
        description="Comma-separated origins gRPC-Web browsers may use (container renders drop"
        " localhost and loopback origins).",
    )
    web_port: int = Field(
        3000,
        ge=-1,
        le=65535,
        description="Port of the chat page `seseragi stack` serves on loopback (-1: none); its"
        " origin is added to the CORS origins.",
    )
    web_dir: Path = Field(
        Path("clients/web/dist"),
        description="The built chat page `seseragi stack` serves (`make web` builds it there);"
        " a relative path is taken from the working directory, the checkout for `make run`.",
    )
    edge_open_reflection: bool = Field(
        False, description="Serve gRPC reflection through Envoy without a token."
    )
