"""bench.run's serving flags: CPU float32 by default, and only Seseragi off the CPU."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.engines import Serving, server_settings
from bench.run import choose, parse_args, serving

pytestmark = pytest.mark.unit


def test_defaults_keep_the_cpu_float32_comparison() -> None:
    args = parse_args(["--engines", "seseragi"])  # the vLLM peers would need their venv
    workload, _, _, _ = choose(args)
    assert serving(args, workload) == Serving("cpu", "float32", "none", 32)
    settings = server_settings(Path("/cache"), serving(args, workload))
    assert (settings["SESERAGI_DEVICE"], settings["SESERAGI_DTYPE"]) == ("cpu", "float32")
    assert settings["SESERAGI_QUANTIZATION"] == "none"
    assert settings["SESERAGI_MAX_RUNNING_REQUESTS"] == "32"


def test_gpu_flags_reach_the_server_settings() -> None:
    args = parse_args(
        ["--engines", "seseragi", "--device", "cuda", "--dtype", "float16", "--quantization", "nf4"]
        + ["--concurrency", "1,16,64"]
    )
    workload, _, _, _ = choose(args)
    settings = server_settings(Path("/cache"), serving(args, workload))
    assert (settings["SESERAGI_DEVICE"], settings["SESERAGI_DTYPE"]) == ("cuda", "float16")
    assert settings["SESERAGI_QUANTIZATION"] == "nf4"
    # 64 streams all run at once rather than 32 of them waiting in the queue
    assert settings["SESERAGI_MAX_RUNNING_REQUESTS"] == "64"


def test_concurrency_list_shapes_the_workload() -> None:
    args = parse_args(
        ["--engines", "seseragi", "--concurrency", "64,1,16", "--max-new-tokens", "8"]
    )
    workload, _, rounds, engines = choose(args)
    assert workload.concurrencies == (1, 16, 64)
    assert (workload.many, workload.most, workload.max_new_tokens) == (16, 64, 8)
    assert (rounds, engines) == (3, ["seseragi"])


def test_presets_stay_as_they_were() -> None:
    workload, _, _, _ = choose(parse_args(["--engines", "seseragi", "--quick"]))
    assert (workload.concurrencies, workload.many, workload.max_new_tokens) == ((1, 4, 8), 4, 16)


@pytest.mark.parametrize("engines", ["seseragi,vllm_offline", "vllm_serve", "seseragi,naive"])
def test_peers_and_baselines_refuse_the_gpu(engines: str) -> None:
    with pytest.raises(SystemExit, match="run only on CPU"):
        choose(parse_args(["--device", "cuda", "--engines", engines]))


@pytest.mark.parametrize("text", ["0,4", "a,b", ","])
def test_bad_concurrency_lists_are_refused(text: str) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--concurrency", text])
