"""The loaded model as every face and the job worker use it: engine, tokenizer and facts.

Its own module because the gRPC and HTTP faces, the job worker and both processes' boot share it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from seseragi.api.convert.requests import GenerateMessage, parse_generate
from seseragi.engine.handle import EngineClient
from seseragi.engine.types import Request
from seseragi.model.loader import ModelInfo
from seseragi.model.tokenizer import TextTokenizer, Tools
from seseragi.settings import GenerationSettings


@dataclass(frozen=True, slots=True)
class Backend:
    """Everything a call needs once the model is loaded."""

    engine: EngineClient
    tokenizer: TextTokenizer
    info: ModelInfo

    async def parse(
        self,
        request: GenerateMessage,
        settings: GenerationSettings,
        time_remaining: float | None,
        tools: Tools = (),
    ) -> Request:
        """Validate, render, tokenize and compile any grammar off the event loop (tokenizing
        long inputs and compiling schemas block)."""
        return await asyncio.to_thread(
            parse_generate,
            request,
            self.tokenizer,
            settings,
            self.info.context_length,
            time_remaining,
            tools,
        )
