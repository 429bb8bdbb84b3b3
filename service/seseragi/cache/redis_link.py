"""Redis connections with a bounded timeout each and a bounded pool, so Redis can never hang a
call and no load can open more connections than `redis_max_connections`."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import BlockingConnectionPool, Redis

from seseragi.settings import JobsSettings

CACHE_DATABASE = 1  # the default cache URL: the job Redis's server, this logical database


def cache_url(settings: JobsSettings) -> str:
    """The result cache's Redis: SESERAGI_CACHE_REDIS_URL, else the job Redis with database 1."""
    if settings.cache_redis_url:
        return settings.cache_redis_url
    parts = urlsplit(settings.redis_url)
    return urlunsplit(parts._replace(path=f"/{CACHE_DATABASE}"))


def connect(settings: JobsSettings, *, url: str = "", blocking_seconds: float = 0.0) -> Redis:
    """A client whose every command gives up after `redis_timeout_seconds`.

    A client used for blocking reads (XREADGROUP BLOCK) passes how long it blocks, so the read
    itself is not mistaken for an outage. Retries are off: a slow Redis is a miss, not a wait.
    A command that finds every pooled connection busy waits for one, as long as a command may.
    """
    timeout = settings.redis_timeout_seconds
    pool = BlockingConnectionPool.from_url(
        url or settings.redis_url,
        max_connections=settings.redis_max_connections,
        timeout=timeout + blocking_seconds,
        socket_timeout=timeout + blocking_seconds,
        socket_connect_timeout=timeout,
        retry=None,
        decode_responses=False,
    )
    return Redis.from_pool(pool)  # closing the client closes its pool


def connect_one(settings: JobsSettings, *, blocking_seconds: float) -> Redis:
    """A client on one dedicated connection, for a single reader that blocks (XREAD BLOCK)."""
    timeout = settings.redis_timeout_seconds
    return Redis.from_url(
        settings.redis_url,
        single_connection_client=True,
        socket_timeout=timeout + blocking_seconds,
        socket_connect_timeout=timeout,
        retry=None,
        decode_responses=False,
    )
