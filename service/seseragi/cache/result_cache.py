"""The exact-match result cache: deterministic results in Redis, keyed by all they depend on.

It lives in a Redis of its own (SESERAGI_CACHE_REDIS_URL) where `allkeys-lru` and `maxmemory`
bound it, so eviction can only ever remove cache entries, never the job queue; each entry is
capped at `result_cache_max_entry_bytes` and expires after `result_cache_ttl_seconds`.

Redis trouble never reaches a caller: a failed or slow command is a miss, logged once per outage
and counted, and the cache tries Redis again a second later, so it resumes by itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Protocol, TypeVar, cast

from google.protobuf.message import DecodeError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from seseragi.engine.types import Request
from seseragi.model.loader import ModelInfo
from seseragi.settings import JobsSettings
from seseragi_contract.v1 import generation_pb2 as pb

log = logging.getLogger(__name__)
T = TypeVar("T")
RETRY_AFTER_OUTAGE_S = 1.0
CACHE_HEADER = "x-seseragi-cache"


class CacheObserver(Protocol):
    """What the cache reports, as plain calls: metrics live in telemetry, not here."""

    def lookup(self, outcome: str) -> None:
        """A lookup ended as "hit", "miss" or "error" (Redis failed or was slow: a miss)."""

    def command_failed(self, operation: str) -> None:
        """A Redis "get" or "set" failed or timed out."""


class NullCacheObserver:
    def lookup(self, outcome: str) -> None:
        pass

    def command_failed(self, operation: str) -> None:
        pass


@dataclass(frozen=True, slots=True)
class Lookup:
    """A lookup's answer; `outcome` is "hit", "miss" or "error"."""

    response: pb.GenerateResponse | None
    outcome: str


def cache_key(request: Request, info: ModelInfo, *, seeded: bool, scope: str) -> str | None:
    """A digest of everything the output depends on, or None when the output is not repeatable.

    Greedy output does not depend on the seed, so the seed joins the key only when sampling; a
    soft time limit makes the output depend on the clock, so such requests are never cached.
    `scope` is the verified subject whose answers a hit may serve ("" when every caller shares
    them), so one tenant cannot learn another's prompts from hits or their latency.
    """
    sampling, stopping = request.sampling, request.stopping
    if not (sampling.greedy or seeded) or stopping.time_limit_s is not None:
        return None
    identity = {
        "scope": scope,
        "model": [info.model_id, info.revision, info.dtype, info.quantization],
        "input": list(request.prompt_token_ids),
        "sampling": [
            sampling.temperature,
            sampling.top_p,
            sampling.top_k,
            sampling.repetition_penalty,
            None if sampling.greedy else sampling.seed,
            sampling.presence_penalty,
            sampling.frequency_penalty,
            sampling.min_p,
            [list(pair) for pair in sampling.logit_bias],
        ],
        "stopping": [
            stopping.max_new_tokens,
            stopping.min_new_tokens,
            list(stopping.stop_sequences),
            stopping.include_stop_sequence,
            list(stopping.stop_token_ids),
            stopping.ignore_eos,
        ],
        "logprobs": [request.logprobs, request.top_logprobs],
    }
    if request.structured is not None:  # only then, so keys of free requests stay as they were
        identity["structured"] = [request.structured.kind, request.structured.spec]
    encoded = json.dumps(identity, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()


class ResultCache:
    def __init__(
        self, redis: Redis, settings: JobsSettings, observer: CacheObserver | None = None
    ) -> None:
        self._redis = redis
        self._observer = observer or NullCacheObserver()
        self._prefix = f"{settings.redis_key_prefix}cache:"
        self._ttl_s = settings.result_cache_ttl_seconds
        self._max_entry_bytes = settings.result_cache_max_entry_bytes
        self._timeout_s = settings.redis_timeout_seconds
        self._retry_at = 0.0
        self._down = False

    async def close(self) -> None:
        await self._redis.aclose()

    async def fetch(self, key: str) -> Lookup:
        data = await self._guarded("get", self._redis.get(self._prefix + key))
        if data is None:
            # Failed now, or skipped while Redis is known down: an error either way, not a miss.
            lookup = Lookup(None, "error" if self._down else "miss")
        else:
            lookup = decode_entry(cast(bytes, data))
        self._observer.lookup(lookup.outcome)
        return lookup

    async def store(self, key: str, response: pb.GenerateResponse) -> None:
        kept = pb.GenerateResponse()
        kept.CopyFrom(response)
        kept.ClearField("request_id")
        kept.ClearField("timings")
        data = kept.SerializeToString()
        if len(data) > self._max_entry_bytes:  # one huge answer may not push out many small ones
            log.debug("result too large to cache", extra={"bytes": len(data)})
            return
        await self._guarded("set", self._redis.set(self._prefix + key, data, ex=self._ttl_s))

    async def _guarded(self, operation: str, command: Awaitable[T]) -> T | None:
        if time.monotonic() < self._retry_at:
            if asyncio.iscoroutine(command):
                command.close()
            return None
        try:
            result = await asyncio.wait_for(command, self._timeout_s)
        except (RedisError, OSError, TimeoutError) as exc:
            self._observer.command_failed(operation)
            self._retry_at = time.monotonic() + RETRY_AFTER_OUTAGE_S
            if not self._down:
                self._down = True
                log.warning("result cache off: redis unreachable", extra={"error": repr(exc)})
            return None
        if self._down:
            self._down = False
            log.info("result cache on: redis reachable again")
        return result


def decode_entry(data: bytes) -> Lookup:
    """A stored entry that no longer parses (another version wrote it, or it was cut) is a miss."""
    try:
        return Lookup(pb.GenerateResponse.FromString(data), "hit")
    except DecodeError:
        log.warning("result cache entry does not parse; treated as a miss")
        return Lookup(None, "miss")
