"""The one loop over a request's engine events, shared by every face (gRPC, HTTP, jobs).

Each face turns what this yields into its own messages; none of them reads the engine's queue
itself. A failed generation raises its error here, so each face maps it through its one error
table at the point where it already handles exceptions.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from seseragi.engine.handle import RequestHandle
from seseragi.engine.types import Finished, TextDelta


async def events(
    handle: RequestHandle, idle_s: float | None = None
) -> AsyncIterator[TextDelta | Finished | None]:
    """Deltas, then the `Finished` event, after which it ends; `None` after `idle_s` of silence.

    Raises the engine's error when the generation fails. The caller owns the handle and aborts
    it when it stops early (the client went away), which frees the engine slot at the next step.
    """
    while True:
        event = await handle.next_event(timeout=idle_s)
        if event is None or isinstance(event, TextDelta):
            yield event
        elif isinstance(event, Finished):
            yield event
            return
        else:
            raise event.error


async def merged(
    handles: list[RequestHandle], idle_s: float | None = None
) -> AsyncIterator[tuple[int, TextDelta | Finished] | None]:
    """The events of several generations (the n choices of one request) as they come, each with
    its index in `handles`; `None` after `idle_s` of silence from all. Ends after the last
    `Finished`; the first failure raises. One generation is relayed without extra tasks.
    """
    if len(handles) == 1:
        async for event in events(handles[0], idle_s):
            yield None if event is None else (0, event)
        return
    inbox: asyncio.Queue[tuple[int, TextDelta | Finished] | BaseException] = asyncio.Queue()

    async def pump(index: int, handle: RequestHandle) -> None:
        try:
            async for event in events(handle):
                assert event is not None
                inbox.put_nowait((index, event))
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            inbox.put_nowait(exc)

    pumps = [asyncio.create_task(pump(i, handle)) for i, handle in enumerate(handles)]
    remaining = len(handles)
    try:
        while remaining:
            try:
                item = await asyncio.wait_for(inbox.get(), idle_s)
            except TimeoutError:
                yield None
                continue
            if isinstance(item, BaseException):
                raise item
            remaining -= isinstance(item[1], Finished)
            yield item
    finally:
        for task in pumps:
            task.cancel()
