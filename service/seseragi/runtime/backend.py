"""The loaded model as every face and the job worker use it: engine, tokenizer and facts.

Its own module because the gRPC and HTTP faces, the job worker and both processes' boot share it.
"""

from __future__ import annotations

from dataclasses import dataclass

from seseragi.engine.handle import EngineClient
from seseragi.model.loader import ModelInfo
from seseragi.model.tokenizer import TextTokenizer


@dataclass(frozen=True, slots=True)
class Backend:
    """Everything a call needs once the model is loaded."""

    engine: EngineClient
    tokenizer: TextTokenizer
    info: ModelInfo
