"""uvicorn on the gRPC server's event loop: same process, same engine, no extra hop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn

from seseragi.api.generations import Generations
from seseragi.api.http.app import create_app
from seseragi.settings import ServeSettings
from seseragi.telemetry.http_metrics import HttpMetrics

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: `seseragi serve` drains both APIs on SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpServer:
    def __init__(self, server: _Server, task: asyncio.Task[None], port: int) -> None:
        self._server = server
        self._task = task
        self.port = port

    @classmethod
    async def start(
        cls, generations: Generations, settings: ServeSettings, metrics: HttpMetrics
    ) -> HttpServer:
        """Bind (port 0: a free one) and serve until `stop`."""
        config = uvicorn.Config(
            create_app(generations, settings, metrics),
            log_config=None,  # our logging; the access log is our middleware's
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=int(settings.shutdown_grace_seconds) or 1,
        )
        listener = socket.create_server((settings.host, settings.http_port), reuse_port=False)
        server = _Server(config)
        task = asyncio.create_task(server.serve(sockets=[listener]))
        while not server.started:
            if task.done():
                task.result()  # raises why it could not start
            await asyncio.sleep(0.01)
        port: int = listener.getsockname()[1]
        log.info("http listening", extra={"address": f"{settings.host}:{port}"})
        return cls(server, task, port)

    async def stop(self) -> None:
        """Close the port; streams still open end within uvicorn's graceful timeout."""
        self._server.should_exit = True
        await self._task
