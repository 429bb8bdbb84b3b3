"""What the gRPC and HTTP faces of `seseragi serve` bind and accept."""

from __future__ import annotations

from pydantic import Field

from seseragi.settings.base import SeseragiSettings


class ServerSettings(SeseragiSettings):
    host: str = Field("127.0.0.1", description="Address the gRPC server binds.")
    port: int = Field(50051, ge=0, le=65535, description="gRPC port (0 picks a free one).")
    http_port: int = Field(
        8000,
        ge=-1,
        le=65535,
        description="Port of the OpenAI-compatible HTTP API on the gRPC host (0 picks a free one,"
        " -1 disables).",
    )
    rpc_headroom: int = Field(
        256,
        ge=1,
        description="Calls the gRPC server takes at once beyond running + queued generations:"
        " health checks, job calls, WatchJob streams and the generations it refuses"
        " RESOURCE_EXHAUSTED with a reason. gRPC refuses calls beyond that sum before Python"
        " sees them (and caps streams per connection at it).",
    )
    max_request_bytes: int = Field(1 << 20, ge=1024, description="Largest request message.")
    max_response_bytes: int = Field(4 << 20, ge=1024, description="Largest response message.")
    shutdown_notice_seconds: float = Field(
        6.0,
        ge=0,
        description="Least time the port stays open after SIGTERM, answering NOT_SERVING, "
        "so load balancers stop routing here before it closes (within the grace period).",
    )
    edge_secret: str = Field(
        "",
        description="Secret Envoy sends as proof it set the subject; when set, calls without it"
        " are refused. `make run` picks a random one.",
    )
    require_edge_secret: bool = Field(
        False,
        description="Refuse to start without SESERAGI_EDGE_SECRET (set in every container"
        " manifest), so no deployed replica trusts a client-sent subject or runs unguarded.",
    )
    max_requests_per_caller: int = Field(
        16, ge=0, description="Running or queued generations per verified subject; 0: no cap."
    )

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"
