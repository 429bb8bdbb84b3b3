"""Redis connections with a bounded timeout each, so Redis can never hang a call."""

from __future__ import annotations

from redis.asyncio import Redis

from seseragi.config import Settings


def connect(settings: Settings, *, blocking_seconds: float = 0.0) -> Redis:
    """A client whose every command gives up after `redis_timeout_seconds`.

    A client used for blocking reads (XREADGROUP BLOCK) passes how long it blocks, so the read
    itself is not mistaken for an outage. Retries are off: a slow Redis is a miss, not a wait.
    """
    timeout = settings.redis_timeout_seconds
    return Redis.from_url(
        settings.redis_url,
        socket_timeout=timeout + blocking_seconds,
        socket_connect_timeout=timeout,
        retry=None,
        decode_responses=False,
    )
