"""What every face does around a generation, whatever its wire format: readiness, the caller's
slot, validation, admission, the result cache and the report of a finished generation.

The gRPC servicer and the HTTP routes both call this; each maps the exceptions raised here
through the one error table (api/errors.py) into its own status.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from seseragi.api.convert import responses
from seseragi.api.convert.requests import GenerateMessage, parse_generate
from seseragi.api.convert.structured import grammar_violation
from seseragi.api.errors import InvalidRequest, NotReady
from seseragi.api.limits import CallerSlots
from seseragi.cache.result_cache import ResultCache, cache_key
from seseragi.engine.errors import EngineFull
from seseragi.engine.handle import RequestHandle
from seseragi.engine.types import Finished, Request
from seseragi.model.tokenizer import Tools
from seseragi.runtime.backend import Backend
from seseragi.settings import GenerationSettings, ServeSettings
from seseragi.telemetry.calls import annotate
from seseragi.telemetry.hub import Telemetry
from seseragi_contract.v1 import generation_pb2 as pb


@dataclass(frozen=True, slots=True)
class CacheLookup:
    key: str | None
    outcome: str  # "hit", "miss" or "bypass", as the response header says
    response: pb.GenerateResponse | None = None


def choice_request(parsed: Request, index: int) -> Request:
    """Choice `index` of an n-sample request: its own id and a seed derived from the request's.

    Choice 0 is the request itself, so n=1 behaves exactly as before; choice i > 0 runs as its own
    engine request (sharing choice 0's prompt blocks through the prefix cache, see
    engine/scheduler.py) with a seed that depends only on the request seed and i, so a seeded
    request reproduces every choice.
    """
    if index == 0:
        return parsed
    digest = hashlib.sha256(f"{parsed.sampling.seed}:{index}".encode()).digest()
    seed = int.from_bytes(digest[:8], "big") >> 1  # 63 bits, like a drawn seed
    return dataclasses.replace(
        parsed,
        request_id=f"{parsed.request_id}-{index}",
        sampling=dataclasses.replace(parsed.sampling, seed=seed),
    )


def expand(parsed: Request, n: int) -> list[Request]:
    """One engine request per choice (n of 0 means 1)."""
    return [choice_request(parsed, index) for index in range(max(n, 1))]


async def parse(
    backend: Backend,
    request: GenerateMessage,
    settings: GenerationSettings,
    time_remaining: float | None,
    tools: Tools = (),
) -> Request:
    """Validate, render and tokenize off the event loop (tokenizing long inputs blocks), then have
    the engine compile any grammar; every face and the job submitter parse through this."""
    parsed = await asyncio.to_thread(
        parse_generate,
        request,
        backend.tokenizer,
        settings,
        backend.info.context_length,
        time_remaining,
        tools,
    )
    if parsed.structured is not None:
        bad_grammar = await grammar_violation(parsed.structured, backend.engine)
        if bad_grammar is not None:
            raise InvalidRequest([bad_grammar])
    return parsed


class Generations:
    def __init__(
        self,
        settings: ServeSettings,
        telemetry: Telemetry | None = None,
        results: ResultCache | None = None,
    ) -> None:
        self.settings = settings
        self._telemetry = telemetry
        self._results = results
        self.backend: Backend | None = None
        self.draining = False
        self._caller_slots = CallerSlots(settings.max_requests_per_caller)
        # Calls parsing, queued or running here. Beyond the engine's capacity a call is refused
        # before any rendering or tokenizing, so a crowd is turned away in microseconds instead
        # of each refusal waiting behind the crowd's tokenization (the fault suite's admission row).
        self._capacity = settings.max_running_requests + settings.max_queued_requests
        self._in_flight = 0

    def attach(self, backend: Backend) -> None:
        """Start serving calls with a loaded model."""
        self.backend = backend

    def drain(self) -> None:
        """Refuse new calls as not ready; calls in flight go on."""
        self.draining = True

    def ready(self) -> Backend:
        """The backend, or NotReady while loading or draining."""
        if self.draining:
            raise NotReady("the server is shutting down")
        if self.backend is None:
            raise NotReady("the model is still loading")
        return self.backend

    def refusal(self) -> EngineFull | None:
        """EngineFull while calls parsing, queued or running fill this replica, else None; the
        admission gate asks this before a gRPC call's handler runs."""
        if self._in_flight < self._capacity:
            return None
        running = self.settings.max_running_requests
        return EngineFull(running, self._in_flight - running, 1.0)

    def hold_slot(self, who: str) -> Callable[[], None]:
        """Take one of this replica's call slots and one of the caller's (or raise EngineFull /
        CallerLimitReached); returns what gives them back."""
        full = self.refusal()
        if full is not None:
            raise full
        self._caller_slots.acquire(who)
        self._in_flight += 1

        def release() -> None:
            self._caller_slots.release(who)
            self._in_flight -= 1

        return release

    async def parse(
        self,
        backend: Backend,
        request: GenerateMessage,
        time_remaining: float | None,
        tools: Tools = (),
    ) -> Request:
        return await parse(backend, request, self.settings, time_remaining, tools)

    def admit(self, backend: Backend, parsed: Request) -> RequestHandle:
        """Admit at once or raise EngineFull / EngineStopped."""
        handle = backend.engine.submit(parsed)
        annotate(request_id=handle.request_id)
        return handle

    async def lookup(
        self, request: GenerateMessage, parsed: Request, backend: Backend, who: str
    ) -> CacheLookup:
        """The cached answer when there is one, with this call's id and seed; by default only
        answers the same caller (`who`, the verified subject) caused are served."""
        if self._results is None or request.cache == pb.CACHE_POLICY_BYPASS:
            return CacheLookup(None, "bypass")
        scope = who if self.settings.result_cache_scope == "caller" else ""
        seeded = request.sampling.HasField("seed")
        key = cache_key(parsed, backend.info, seeded=seeded, scope=scope)
        if key is None:
            return CacheLookup(None, "bypass")
        if request.cache == pb.CACHE_POLICY_REFRESH:
            return CacheLookup(key, "miss")
        began = time.monotonic()
        began_ns = time.time_ns()
        found = await self._results.fetch(key)
        if self._telemetry is not None:
            self._telemetry.cache_looked_up(began_ns, found.outcome)
        if found.response is None:
            return CacheLookup(key, "miss")
        hit = responses.from_cache(
            found.response, parsed.request_id, parsed.sampling.seed, time.monotonic() - began
        )
        return CacheLookup(key, "hit", hit)

    async def remember(self, key: str | None, response: pb.GenerateResponse) -> None:
        if key is not None and self._results is not None:
            await self._results.store(key, response)

    def finished(self, backend: Backend, handle: RequestHandle, event: Finished) -> None:
        """Log fields and trace spans of a generation that ended well."""
        if self._telemetry is not None:
            self._telemetry.generation_finished(handle.seq, event, backend.tokenizer.decode)
