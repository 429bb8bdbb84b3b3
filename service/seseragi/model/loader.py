"""Load the configured model onto the chosen device, dtype and quantization, and describe it."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seseragi.model import builtin
from seseragi.model.tokenizer import TextTokenizer
from seseragi.settings import DEFAULT_MODEL, EngineSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What is actually in use, as GetModelInfo reports it."""

    model_id: str
    revision: str
    dtype: str
    device: str
    quantization: str
    quantization_bits: int
    context_length: int
    eos_token_ids: tuple[int, ...]
    pad_token_id: int
    load_seconds: float


@dataclass(frozen=True, slots=True)
class LoadedModel:
    model: Any  # transformers.PreTrainedModel
    tokenizer: TextTokenizer
    info: ModelInfo


ENGINE_FORMATS = frozenset({"int8", "int4"})  # weight-only formats the CPU engine quantizes itself


def engine_weight_format(quantization: str, device: str) -> str:
    """The format the engine quantizes the weights to itself, or "none" (full precision, or
    quantized by bitsandbytes at load)."""
    return quantization if quantization in ENGINE_FORMATS and device == "cpu" else "none"


def resolve_model_dir(settings: EngineSettings) -> str:
    """The built-in model's converted directory, a local directory, or a hub id as given."""
    if settings.model == DEFAULT_MODEL:
        return str(builtin.pull(settings.cache_dir))
    return settings.model


def load(settings: EngineSettings) -> LoadedModel:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _log_transformers_as_json()
    started = time.monotonic()
    source = resolve_model_dir(settings)
    device = _choose_device(settings, torch)
    dtype_name = settings.dtype
    if dtype_name == "auto":
        dtype_name = "bfloat16" if device.startswith("cuda") else "float32"
    quantization = settings.quantization
    if quantization == "auto":
        quantization = "nf4" if device.startswith("cuda") else "none"
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)

    if quantization == "int4" and device != "cpu":
        raise ValueError("int4 is the CPU engine's weight format; on CUDA use nf4")
    kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype_name)}
    # int8 and int4 on CPU load the model as it is: the engine quantizes the weights it runs on
    # (bitsandbytes' int8 on CPU is slower than fp32); NF4 and CUDA go through bitsandbytes.
    if quantization != "none" and engine_weight_format(quantization, device) == "none":
        kwargs["quantization_config"] = _bnb_config(quantization, torch)
        kwargs["device_map"] = {"": device}
    model: Any = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    if "quantization_config" not in kwargs:
        model = model.to(device)
    model.eval()
    hf_tokenizer = AutoTokenizer.from_pretrained(source)
    info = ModelInfo(
        model_id=settings.model,
        revision=_revision(settings, source, model),
        dtype=dtype_name,
        device=str(model.device),
        quantization=quantization,
        quantization_bits={"nf4": 4, "int8": 8, "int4": 4}.get(
            quantization, torch.finfo(model.dtype).bits
        ),
        context_length=_context_length(model, settings),
        eos_token_ids=_eos_token_ids(model, hf_tokenizer),
        pad_token_id=_pad_token_id(hf_tokenizer),
        load_seconds=time.monotonic() - started,
    )
    log.info(
        "model loaded",
        extra={
            "model": info.model_id,
            "device": info.device,
            "dtype": info.dtype,
            "quantization": info.quantization,
            "seconds": round(info.load_seconds, 2),
        },
    )
    return LoadedModel(model, TextTokenizer(hf_tokenizer), info)


def load_tokenizer(settings: EngineSettings) -> TextTokenizer:
    """The tokenizer alone, for a front end whose engine core loads the model."""
    from transformers import AutoTokenizer

    _log_transformers_as_json()
    return TextTokenizer(AutoTokenizer.from_pretrained(resolve_model_dir(settings)))


def _log_transformers_as_json() -> None:
    """transformers writes its warnings through a handler of its own ("[transformers] ...") and
    draws progress bars: either would break the one-JSON-object-per-line log. Its records go to
    the root logger's handler instead."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    hf_logging.disable_default_handler()
    hf_logging.enable_propagation()


def _choose_device(settings: EngineSettings, torch: Any) -> str:
    if settings.device == "cuda" or (settings.device == "auto" and torch.cuda.is_available()):
        return "cuda:0"
    return "cpu"


def _bnb_config(quantization: str, torch: Any) -> Any:
    from transformers import BitsAndBytesConfig

    if quantization == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)  # type: ignore[no-untyped-call]
    # The seed guide's recipe: NF4 with double quantization and bfloat16 compute.
    return BitsAndBytesConfig(  # type: ignore[no-untyped-call]
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )


def _context_length(model: Any, settings: EngineSettings) -> int:
    window = int(getattr(model.config, "max_position_embeddings", 2048))
    return min(window, settings.max_context_tokens) if settings.max_context_tokens else window


def _eos_token_ids(model: Any, tokenizer: Any) -> tuple[int, ...]:
    configured = getattr(model.generation_config, "eos_token_id", None)
    if configured is None:
        configured = tokenizer.eos_token_id
    ids = configured if isinstance(configured, list) else [configured]
    return tuple(int(i) for i in ids if i is not None)


def _pad_token_id(tokenizer: Any) -> int:
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
        if candidate is not None:
            return int(candidate)
    return 0


def _revision(settings: EngineSettings, source: str, model: Any) -> str:
    """A digest of the weights, so caches keyed on it never mix two models."""
    path = Path(source)
    if settings.model == DEFAULT_MODEL:
        return "sha256:" + builtin.weights_digest(path)
    if path.is_dir():
        return "sha256:" + _directory_digest(path, settings.cache_dir)
    commit = getattr(model.config, "_commit_hash", None)
    return f"hub:{commit}" if commit else "unknown"


def _directory_digest(model_dir: Path, cache_dir: Path) -> str:
    """Hash of every weight file, remembered per (path, size, mtime) so restarts stay fast."""
    files = sorted(p for p in model_dir.iterdir() if p.suffix in {".safetensors", ".bin", ".gguf"})
    fingerprint = json.dumps(
        [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in files]
    )
    memo_path = cache_dir / "digests.json"
    memo: dict[str, str] = json.loads(memo_path.read_text()) if memo_path.is_file() else {}
    if fingerprint not in memo:
        combined = hashlib.sha256()
        for weight_file in files:
            combined.update(builtin.sha256_of(weight_file).encode())
        memo[fingerprint] = combined.hexdigest()
        memo_path.parent.mkdir(parents=True, exist_ok=True)
        memo_path.write_text(json.dumps(memo, indent=1))
    return memo[fingerprint]
