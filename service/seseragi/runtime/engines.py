"""The engine a process runs, built and warmed the one way `serve` and `worker` share."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import TYPE_CHECKING

from seseragi.engine.core_client import CoreClient, CoreProcess
from seseragi.engine.handle import EngineClient
from seseragi.engine.types import Failed, Finished, Request, SamplingParams, StoppingParams
from seseragi.model.loader import LoadedModel, load, load_tokenizer
from seseragi.settings import WorkerSettings

if TYPE_CHECKING:
    from seseragi.engine.async_engine import AsyncEngine


def build_engine(loaded: LoadedModel, settings: WorkerSettings) -> AsyncEngine:
    """The in-process engine: a thread of this process steps the batch."""
    # Imported here: torch and xgrammar come with them, and a front end whose engine is a core
    # process must not carry them (about 0.4 GB resident, issue 12's memory target).
    from seseragi.engine.async_engine import AsyncEngine
    from seseragi.engine.build import make_engine
    from seseragi.engine.grammar import grammars_for

    grammars = grammars_for(loaded.tokenizer)
    return AsyncEngine(make_engine(loaded, settings), loaded.tokenizer, grammars)


async def open_engine(loaded: LoadedModel, settings: WorkerSettings) -> EngineClient:
    """The engine `settings` ask for: a core process (it loads the model itself), or a thread."""
    if settings.engine_process:
        return await CoreClient.launch(settings, loaded.tokenizer)
    # Off the loop: packing the weights and sizing the KV pool take seconds, and health checks
    # must keep answering meanwhile.
    return await asyncio.to_thread(build_engine, loaded, settings)


def keep_torch_out() -> None:
    """For a process whose engine is a core process, before anything imports transformers.

    transformers imports torch whenever it is installed, though a tokenizer needs none of it:
    the front end would carry about 0.4 GB it never uses (issue 12's memory target). A module
    set to None in `sys.modules` reads as not installed, so transformers loads tokenizer-only.
    Only for a process that never runs a model itself (the `serve` and `worker` commands); a
    process that already imported torch keeps it.
    """
    sys.modules.setdefault("torch", None)  # type: ignore[arg-type]
    # Its import would then advise, in plain text before any handler of ours can take it, that
    # "PyTorch was not found": true here, and intended.
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


async def load_front_end(settings: WorkerSettings) -> tuple[LoadedModel, CoreClient]:
    """With a core process, this process needs the tokenizer only; both load side by side."""
    async with asyncio.TaskGroup() as loading:  # one failing cancels (and so kills) the other
        tokenizing = loading.create_task(asyncio.to_thread(load_tokenizer, settings))
        starting = loading.create_task(CoreProcess.start(settings))
    core, tokenizer = starting.result(), tokenizing.result()
    return LoadedModel(None, tokenizer, core.info), CoreClient(settings, tokenizer, core)


async def load_engine(settings: WorkerSettings) -> tuple[LoadedModel, EngineClient]:
    """The model and the engine `settings` ask for, each loaded off the event loop."""
    if settings.engine_process:
        return await load_front_end(settings)
    loaded = await asyncio.to_thread(load, settings)
    return loaded, await open_engine(loaded, settings)


async def warm_up(engine: EngineClient, loaded: LoadedModel) -> None:
    prompt = tuple(loaded.tokenizer.encode("Hello"))
    handle = engine.submit(
        Request("warm-up", prompt, SamplingParams(), StoppingParams(max_new_tokens=2))
    )
    while True:
        event = await handle.next_event()
        if isinstance(event, Failed):
            raise RuntimeError("warm-up generation failed") from event.error
        if isinstance(event, Finished):
            return
