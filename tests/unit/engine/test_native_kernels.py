"""The native CPU kernels compute what their PyTorch formulations compute, refuse bad input with
an error instead of reading outside the pool, and are built once per machine into the cache; a
machine without a compiler gets PyTorch's kernels under "auto" and an error under "native"."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from seseragi.engine.attention import AttentionBatch, native_decode, torch_decode
from seseragi.engine.kernels import NATIVE_KERNELS, TORCH_KERNELS, kernels_for
from seseragi.engine.kv_pool import KVPool
from seseragi.engine.native import build
from seseragi.settings import EngineSettings

CACHE_DIR = EngineSettings().cache_dir  # where the engine builds them: tests reuse the build


@pytest.fixture(scope="module", autouse=True)
def native() -> None:
    assert kernels_for("native", torch.float32, torch.device("cpu"), CACHE_DIR) is NATIVE_KERNELS


def _decode_batch(
    pool: KVPool, lengths: list[int], generator: torch.Generator
) -> tuple[torch.Tensor, AttentionBatch]:
    """Random keys in a pool, and a decode batch whose rows own shuffled blocks of it."""
    size = pool.block_size
    width = -(-max(lengths) // size)
    order = torch.randperm(pool.num_blocks, generator=generator)
    tables = order[: len(lengths) * width].view(len(lengths), width)
    counts = torch.tensor(lengths)
    keys = torch.arange(width * size)
    heads = pool.keys[0].shape[2] * 3
    q = torch.randn(len(lengths), heads, pool.keys[0].shape[3], generator=generator)
    batch = AttentionBatch(
        input_ids=torch.zeros(len(lengths), dtype=torch.long),
        positions=counts - 1,
        slots=torch.zeros(len(lengths), dtype=torch.long),
        logits_rows=torch.arange(len(lengths)),
        num_decode=len(lengths),
        decode_tables=tables,
        decode_mask=(keys[None, :] < counts[:, None])[:, None, None, :],
        decode_lengths=counts,
    )
    return q, batch


def _pool(block_size: int, kv_heads: int = 3, head_dim: int = 64) -> KVPool:
    pool = KVPool(2, 256, block_size, kv_heads, head_dim, torch.float32, torch.device("cpu"))
    generator = torch.Generator().manual_seed(block_size)
    for layer in range(2):
        pool.keys[layer].normal_(generator=generator)
        pool.values[layer].normal_(generator=generator)
    return pool


@pytest.mark.parametrize("block_size", [16, 5])
@pytest.mark.parametrize("lengths", [[1], [177], [3, 40, 17, 96], [16, 32, 33, 1, 7, 64]])
def test_paged_decode_attention_matches_gather_and_sdpa(
    block_size: int, lengths: list[int]
) -> None:
    pool = _pool(block_size)
    q, batch = _decode_batch(pool, lengths, torch.Generator().manual_seed(len(lengths)))
    for layer in range(2):
        expected = torch_decode(q, pool, layer, batch)
        torch.testing.assert_close(
            native_decode(q, pool, layer, batch), expected, rtol=1e-5, atol=1e-5
        )


def test_a_row_attends_the_same_alone_and_in_a_batch() -> None:
    pool = _pool(16)
    q, batch = _decode_batch(pool, [50, 120, 9], torch.Generator().manual_seed(3))
    together = native_decode(q, pool, 0, batch)
    assert batch.decode_tables is not None and batch.decode_lengths is not None
    alone = AttentionBatch(
        batch.input_ids[1:2],
        batch.positions[1:2],
        batch.slots[1:2],
        torch.arange(1),
        num_decode=1,
        decode_tables=batch.decode_tables[1:2],
        decode_lengths=batch.decode_lengths[1:2],
    )
    assert torch.equal(native_decode(q[1:2], pool, 0, alone)[0], together[1])


def test_paged_decode_attention_refuses_tables_outside_the_pool() -> None:
    pool = _pool(16)
    q, batch = _decode_batch(pool, [20], torch.Generator().manual_seed(1))
    outside = replace(batch, decode_tables=torch.tensor([[0, pool.num_blocks]]))
    with pytest.raises(RuntimeError, match="block id outside the pool"):
        native_decode(q, pool, 0, outside)
    too_long = replace(batch, decode_lengths=torch.tensor([10_000]))
    with pytest.raises(RuntimeError, match="length outside the table"):
        native_decode(q, pool, 0, too_long)
    with pytest.raises(RuntimeError, match="float32 only"):
        native_decode(q.double(), pool, 0, batch)


@pytest.mark.parametrize("rows", [1, 3, 16, 40])
def test_native_norms_match_pytorch(rows: int) -> None:
    generator = torch.Generator().manual_seed(rows)
    x = torch.randn(rows, 576, generator=generator)
    added = torch.randn(rows, 576, generator=generator)
    weight = torch.rand(576, generator=generator) + 0.5
    torch.testing.assert_close(
        NATIVE_KERNELS.rms_norm(x, weight, 1e-5), F.rms_norm(x, (576,), weight, 1e-5)
    )
    native_residual, torch_residual = x.clone(), x.clone()
    got = NATIVE_KERNELS.add_rms_norm(native_residual, added, weight, 1e-5)
    expected = TORCH_KERNELS.add_rms_norm(torch_residual, added, weight, 1e-5)
    assert torch.equal(native_residual, x + added)  # the residual is updated in place
    assert torch.equal(torch_residual, x + added)
    torch.testing.assert_close(got, expected)


def test_native_norms_refuse_what_they_cannot_read() -> None:
    weight = torch.ones(8)
    with pytest.raises(RuntimeError, match="contiguous float32"):
        NATIVE_KERNELS.rms_norm(torch.ones(8, 4).t(), weight, 1e-5)
    with pytest.raises(RuntimeError, match="weight must be float32"):
        NATIVE_KERNELS.rms_norm(torch.ones(2, 8), torch.ones(7), 1e-5)
    with pytest.raises(RuntimeError, match="differ in shape"):
        NATIVE_KERNELS.add_rms_norm(torch.ones(2, 8), torch.ones(3, 8), weight, 1e-5)


def test_other_dtypes_and_devices_get_pytorch_kernels_or_a_clear_error() -> None:
    cpu = torch.device("cpu")
    assert kernels_for("auto", torch.bfloat16, cpu, CACHE_DIR) is TORCH_KERNELS
    assert kernels_for("auto", torch.float32, torch.device("meta"), CACHE_DIR) is TORCH_KERNELS
    assert kernels_for("torch", torch.float32, cpu, CACHE_DIR) is TORCH_KERNELS
    with pytest.raises(ValueError, match="float32 on CPU"):
        kernels_for("native", torch.float16, cpu, CACHE_DIR)


def _load_in_a_fresh_process(cache_dir: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    script = textwrap.dedent(
        f"""
        import json, torch
        from pathlib import Path
        from seseragi.engine.kernels import kernels_for
        from seseragi.engine.native import build
        try:
            library = str(build.load("rms_norm", Path({str(cache_dir)!r})))
        except build.NativeBuildError as error:
            library = "error: " + str(error)
        auto = kernels_for("auto", torch.float32, torch.device("cpu"), Path({str(cache_dir)!r}))
        print(json.dumps({{"library": library, "auto": auto.name}}))
        """
    )
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
        check=True,
    )


def test_a_kernel_is_compiled_once_into_the_cache_and_reused(tmp_path: Path) -> None:
    first = _load_in_a_fresh_process(tmp_path, {})
    assert '"auto": "native"' in first.stdout
    libraries = list((tmp_path / "kernels").glob("rms_norm-*.so"))
    assert len(libraries) == 1
    built = libraries[0].stat().st_mtime_ns
    second = _load_in_a_fresh_process(tmp_path, {})
    assert str(libraries[0]) in second.stdout
    assert libraries[0].stat().st_mtime_ns == built
    assert not [p for p in (tmp_path / "kernels").iterdir() if p.suffix != ".so"]  # no leftovers


def test_without_a_working_compiler_auto_falls_back_to_pytorch(tmp_path: Path) -> None:
    broken = tmp_path / "broken-c++"
    broken.write_text("#!/bin/sh\necho 'no compiler here' >&2\nexit 1\n")
    broken.chmod(0o755)
    done = _load_in_a_fresh_process(tmp_path / "cache", {"CXX": str(broken)})
    assert "error: compiling rms_norm-" in done.stdout
    assert "no compiler here" in done.stdout
    assert '"auto": "torch"' in done.stdout
    assert "native kernels unavailable" in done.stderr


def test_no_compiler_at_all_is_a_build_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXX", "")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(build.NativeBuildError, match="no C\\+\\+ compiler"):
        build._compiler()


def test_an_unwritable_cache_falls_back_to_pytorch_instead_of_failing_the_start(
    tmp_path: Path,
) -> None:
    not_a_directory = tmp_path / "cache"
    not_a_directory.write_text("a file where the cache directory should be")
    done = _load_in_a_fresh_process(not_a_directory, {})
    assert "error: compiling rms_norm-" in done.stdout
    assert '"auto": "torch"' in done.stdout


@pytest.mark.parametrize("tokens", [1, 7, 40])
def test_rope_and_cache_matches_pytorch_and_stores_the_same_keys_and_values(tokens: int) -> None:
    heads, kv_heads, head_dim = 9, 3, 64
    generator = torch.Generator().manual_seed(tokens)
    qkv = torch.randn(tokens, (heads + 2 * kv_heads) * head_dim, generator=generator)
    angles = torch.rand(tokens, head_dim, generator=generator) * 6.28
    cos, signed_sin = angles.cos(), angles.sin()
    slots = torch.randperm(64 * 16, generator=generator)[:tokens]
    pools = [_pool(16), _pool(16)]
    rotated = [
        kernels.rope_and_cache(qkv, cos, signed_sin, pool, 1, slots, heads)
        for kernels, pool in zip((TORCH_KERNELS, NATIVE_KERNELS), pools, strict=True)
    ]
    torch.testing.assert_close(rotated[1], rotated[0])
    assert rotated[1].shape == (tokens, heads, head_dim)
    for layer in range(2):
        torch.testing.assert_close(pools[1].keys[layer], pools[0].keys[layer])
        assert torch.equal(pools[1].values[layer], pools[0].values[layer])


def test_rope_and_cache_refuses_a_slot_outside_the_pool() -> None:
    pool = _pool(16)
    qkv = torch.zeros(1, 15 * 64)
    angles = torch.zeros(1, 64)
    with pytest.raises(RuntimeError, match="slot outside the pool"):
        NATIVE_KERNELS.rope_and_cache(
            qkv, angles, angles, pool, 0, torch.tensor([pool.num_blocks * 16]), 9
        )
