"""Where and how to connect: the target, TLS, and the metadata sent with every call."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

Metadata = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Connection:
    """Settings shared by `Client` and `AsyncClient`.

    `token` is sent as `authorization: Bearer <token>`, which Envoy verifies (`seseragi token`
    mints a development one). `tls=True` uses the system's root certificates;
    `root_certificates` (PEM bytes) trusts a private CA instead and implies TLS.
    """

    target: str = "127.0.0.1:50051"
    token: str | None = None
    tls: bool = False
    root_certificates: bytes | None = None
    metadata: Metadata = ()
    options: Sequence[tuple[str, Any]] = field(default=())

    @property
    def secure(self) -> bool:
        return self.tls or self.root_certificates is not None

    def call_metadata(self) -> Metadata:
        bearer: Metadata = (("authorization", f"Bearer {self.token}"),) if self.token else ()
        return (*self.metadata, *bearer)

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(root_certificates=self.root_certificates)

    def channel(self) -> grpc.Channel:
        if self.secure:
            return grpc.secure_channel(self.target, self.credentials(), options=self.options)
        return grpc.insecure_channel(self.target, options=self.options)

    def aio_channel(self) -> grpc.aio.Channel:
        if self.secure:
            return grpc.aio.secure_channel(self.target, self.credentials(), options=self.options)
        return grpc.aio.insecure_channel(self.target, options=self.options)
