"""Every setting, read once from `SESERAGI_*` environment variables (and `.env`).

Nothing else reads os.environ.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL = "smollm2-135m-instruct"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SESERAGI_", env_file=".env", extra="ignore")

    host: str = Field("127.0.0.1", description="Address the gRPC server binds.")
    port: int = Field(50051, ge=0, le=65535, description="gRPC port (0 picks a free one).")
    http_port: int = Field(
        8000,
        ge=-1,
        le=65535,
        description="Port of the OpenAI-compatible HTTP API on the gRPC host (0 picks a free one,"
        " -1 disables).",
    )
    model: str = Field(
        DEFAULT_MODEL,
        description="The built-in model name, a local Hugging Face model directory, or a hub id.",
    )
    cache_dir: Path = Field(
        Path.home() / ".cache" / "seseragi", description="Where converted models are kept."
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when present.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="auto: float32 on CPU, bfloat16 on CUDA."
    )
    quantization: Literal["auto", "none", "nf4", "int8"] = Field(
        "auto", description="bitsandbytes quantization; auto: nf4 on CUDA, none on CPU."
    )
    torch_threads: int = Field(0, ge=0, description="CPU threads for torch; 0: one per core.")

    engine_process: bool = Field(
        False,
        description="Run the engine core (model and batch) in its own process, apart from the"
        " gRPC event loop; false: a thread of the server process.",
    )
    max_running_requests: int = Field(32, ge=1, description="Sequences in the running batch.")
    max_queued_requests: int = Field(64, ge=0, description="Requests waiting for the batch.")
    rpc_headroom: int = Field(
        256,
        ge=1,
        description="Calls the gRPC server takes at once beyond running + queued generations:"
        " health checks, job calls, WatchJob streams and the generations it refuses"
        " RESOURCE_EXHAUSTED with a reason. gRPC refuses calls beyond that sum before Python"
        " sees them (and caps streams per connection at it).",
    )
    max_prefill_tokens: int = Field(
        512,
        ge=1,
        description="Prompt tokens one engine step may compute; longer prompts are prefilled in"
        " chunks between decode steps of running streams.",
    )
    engine_runner: Literal["auto", "paged", "padded"] = Field(
        "auto",
        description="paged: Seseragi's Llama-family forward over a paged KV cache (chunked"
        " prefill, prefix caching); padded: any transformers model, left-padded batches;"
        " auto: paged when the model supports it.",
    )
    kv_cache_bytes: int = Field(
        512 << 20, ge=1 << 20, description="Memory of the paged KV cache, allocated at start."
    )
    kv_block_size: int = Field(16, ge=1, le=256, description="Tokens per KV cache block.")
    prefix_caching: bool = Field(
        True, description="Reuse the KV blocks of a prompt prefix seen before (paged runner)."
    )
    max_context_tokens: int = Field(
        0, ge=0, description="Cap on input plus output tokens per sequence; 0: the model's window."
    )
    max_input_tokens: int = Field(2048, ge=1, description="Most tokens in a rendered input.")
    max_new_tokens: int = Field(1024, ge=1, description="Largest max_new_tokens a request may ask.")
    default_max_new_tokens: int = Field(128, ge=1, description="max_new_tokens when unset.")
    default_temperature: float = Field(0.7, ge=0.0, le=2.0, description="Temperature when unset.")
    max_stop_sequences: int = Field(8, ge=0, description="Most stop sequences per request.")
    max_stop_sequence_length: int = Field(
        64, ge=1, description="Most characters per stop sequence."
    )
    max_top_logprobs: int = Field(20, ge=0, description="Most alternatives per token.")
    max_request_bytes: int = Field(1 << 20, ge=1024, description="Largest request message.")
    max_response_bytes: int = Field(4 << 20, ge=1024, description="Largest response message.")
    heartbeat_interval_seconds: float = Field(
        5.0, gt=0, description="Heartbeat period on an otherwise idle stream."
    )
    shutdown_grace_seconds: float = Field(
        30.0, ge=0, description="How long in-flight calls may finish after SIGTERM."
    )
    shutdown_notice_seconds: float = Field(
        6.0,
        ge=0,
        description="Least time the port stays open after SIGTERM, answering NOT_SERVING, "
        "so load balancers stop routing here before it closes (within the grace period).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO")
    log_prompts: bool = Field(
        False, description="Put prompts and generated text in the access log (off: never)."
    )
    metrics_host: str = Field("127.0.0.1", description="Address /metrics binds.")
    metrics_port: int = Field(
        9464, ge=-1, le=65535, description="Port of /metrics (0 picks a free one, -1 disables)."
    )
    metrics_latency_buckets: tuple[float, ...] = Field(
        (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0),
        description="Histogram buckets (seconds) for TTFT, queue, prefill, decode, end to end.",
    )
    metrics_token_gap_buckets: tuple[float, ...] = Field(
        (0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5),
        description="Histogram buckets (seconds) for inter-token latency.",
    )
    otlp_endpoint: str = Field(
        "", description="OTLP/gRPC collector for traces, e.g. http://127.0.0.1:4317; empty: none."
    )

    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="Redis for the job queue; deployments give it noeviction and AOF"
        " (docs/redis.md).",
    )
    cache_redis_url: str = Field(
        "",
        description="Redis for the result cache, where allkeys-lru may evict; empty: the job"
        " Redis's server with logical database 1 (one server has one eviction policy, so"
        " deployments run a second Redis).",
    )
    redis_max_connections: int = Field(
        32,
        ge=2,
        description="Connections one process opens to each Redis for ordinary commands; callers"
        " beyond it wait their turn instead of opening more (WatchJob shares one blocking reader).",
    )
    redis_key_prefix: str = Field("seseragi:", description="Prefix of every Redis key.")
    redis_timeout_seconds: float = Field(
        0.5, gt=0, description="Longest wait for one Redis command before it counts as down."
    )
    result_cache: bool = Field(True, description="Cache deterministic results in Redis.")
    result_cache_ttl_seconds: int = Field(3600, ge=1, description="How long a cached result lives.")
    result_cache_max_entry_bytes: int = Field(
        256 << 10, ge=1, description="Largest result the cache stores; bigger ones are not cached."
    )
    result_cache_scope: Literal["caller", "shared"] = Field(
        "caller",
        description="caller: a cached answer serves only the verified subject that caused it, so"
        " no tenant learns another's prompts from hits or latency; shared: every caller.",
    )
    job_concurrency: int = Field(
        4, ge=0, description="Jobs this process runs at once; 0: it runs none."
    )
    max_jobs_per_caller: int = Field(
        100,
        ge=0,
        description="Jobs one verified subject may have queued or running, across replicas;"
        " 0: no cap.",
    )
    max_watches_per_caller: int = Field(
        32, ge=0, description="Open WatchJob streams per verified subject on a replica; 0: no cap."
    )
    job_visibility_timeout_seconds: float = Field(
        30.0, gt=0, description="Silence after which another worker reclaims a running job."
    )
    job_max_attempts: int = Field(
        3,
        ge=1,
        description="Attempts a job gets (its worker died or went silent); then it ends FAILED"
        " with the last error.",
    )
    job_ttl_seconds: int = Field(
        86400, ge=1, description="How long an ended job, its result and token log are kept."
    )
    max_queued_jobs: int = Field(
        1000, ge=1, description="Jobs queued or running at once; beyond it SubmitJob is refused."
    )

    # The edge (Envoy in front of the service); see envoy/ and `seseragi envoy render`.
    edge_secret: str = Field(
        "",
        description="Secret Envoy sends as proof it set the subject; when set, calls without it"
        " are refused.",
    )
    require_edge_secret: bool = Field(
        False,
        description="Refuse to start without SESERAGI_EDGE_SECRET (set in every container"
        " manifest), so no deployed replica trusts a client-sent subject or runs unguarded.",
    )
    max_requests_per_caller: int = Field(
        16, ge=0, description="Running or queued generations per verified subject; 0: no cap."
    )
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
        "127.0.0.1:50051", description="Comma-separated host:port of the service replicas."
    )
    edge_http_upstreams: str = Field(
        "127.0.0.1:8000",
        description="Comma-separated host:port of the replicas' OpenAI HTTP API (empty: the edge"
        " serves no /v1/chat/completions, /v1/completions or /v1/models).",
    )
    edge_replicas: int = Field(1, ge=1, le=8, description="Replicas `seseragi stack` starts.")
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
        "http://localhost:3000", description="Comma-separated origins gRPC-Web browsers may use."
    )
    web_port: int = Field(
        3000,
        ge=-1,
        le=65535,
        description="Port of the chat page `seseragi stack` serves on loopback (-1: none); its"
        " origin is added to the CORS origins.",
    )
    edge_open_reflection: bool = Field(
        False, description="Serve gRPC reflection through Envoy without a token."
    )

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def edge_dir(self) -> Path:
        """Where the dev key and rendered Envoy configuration live."""
        return self.cache_dir / "edge"
