"""Real seseragi servers on loopback, each on its own event-loop thread so tests may block."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import secrets
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from seseragi.api.identity import SECRET_HEADER, SUBJECT_HEADER
from seseragi.config import Settings
from seseragi.engine.handle import EngineStats
from seseragi.model.loader import LoadedModel
from seseragi.runtime.app import RunningServer, become_ready, drain_and_stop, start

T = TypeVar("T")
REPO_ROOT = Path(__file__).resolve().parent.parent
# Every Redis key this test run writes starts with this, so runs never see each other's keys.
REDIS_TEST_PREFIX = f"seseragi-test-{os.getpid()}-{secrets.token_hex(4)}:"
# Server processes the tests start inherit the environment: the same prefix, and no result cache.
os.environ["SESERAGI_REDIS_KEY_PREFIX"] = REDIS_TEST_PREFIX
os.environ["SESERAGI_RESULT_CACHE"] = "false"
# and a free port for the OpenAI HTTP API, so replicas never collide on its default 8000.
os.environ["SESERAGI_HTTP_PORT"] = "0"


# The edge secret of test servers that tell callers apart, and the metadata Envoy would send.
TEST_EDGE_SECRET = "test-edge-secret"


def as_caller(subject: str) -> tuple[tuple[str, str], ...]:
    """What Envoy sends for a verified `subject`: the subject and the proof it set it."""
    return ((SUBJECT_HEADER, subject), (SECRET_HEADER, TEST_EDGE_SECRET))


class ServerThread:
    """Start, serve and drain a server with an already loaded model.

    With `ready=False` the server binds its port but answers UNAVAILABLE (still loading) until
    the test calls `become_ready()`.
    """

    def __init__(self, settings: Settings, loaded: LoadedModel, *, ready: bool = True) -> None:
        self.settings = settings
        self._loaded = loaded
        self._ready = ready
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.running: RunningServer | None = None
        self._draining: concurrent.futures.Future[None] | None = None

    def __enter__(self) -> ServerThread:
        self._thread.start()
        self.running = self._call(start(self.settings))
        if self._ready:
            self.become_ready()
        return self

    def become_ready(self) -> None:
        assert self.running is not None
        self._call(become_ready(self.running, self._loaded, self.settings))

    def cut_calls(self) -> None:
        """Stop at once, without a drain: open streams end with UNAVAILABLE mid-way."""
        assert self.running is not None
        self._call(self.running.server.stop(0))

    def __exit__(self, *exc: object) -> None:
        assert self.running is not None
        if self._draining is None:
            self._call(drain_and_stop(self.running, 1.0))
        else:
            self._draining.result(120)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def start_drain(self, grace_seconds: float) -> concurrent.futures.Future[None]:
        """Begin what SIGTERM begins; the returned future resolves once the server stopped."""
        assert self.running is not None and self._draining is None
        self._draining = asyncio.run_coroutine_threadsafe(
            drain_and_stop(self.running, grace_seconds), self._loop
        )
        return self._draining

    @property
    def target(self) -> str:
        assert self.running is not None
        return f"127.0.0.1:{self.running.port}"

    @property
    def http_url(self) -> str:
        """The OpenAI-compatible API's base URL (…/v1), as the openai SDK takes it."""
        assert self.running is not None and self.running.http is not None
        return f"http://127.0.0.1:{self.running.http.port}/v1"

    def stats(self) -> EngineStats:
        assert self.running is not None and self.running.backend is not None
        return self.running.backend.engine.stats()

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on the server's event loop (where its engine lives) and wait for it."""
        return self._call(coroutine)

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(120)


def make_settings(**overrides: object) -> Settings:
    base: dict[str, object] = {
        "host": "127.0.0.1",
        "port": 0,
        "heartbeat_interval_seconds": 0.5,
        "metrics_port": 0,
        "http_port": 0,
        "redis_key_prefix": REDIS_TEST_PREFIX,
        # No result cache unless a test asks for it: repeated greedy calls must run the model.
        "result_cache": False,
        # The engine as a thread, over the model the tests load once; the core process (the
        # default) has its own tests, and every `seseragi serve` the e2e tests start runs one.
        "engine_process": False,
    }
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]
