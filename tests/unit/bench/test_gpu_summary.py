"""The GPU check's table: every stream count of every run, medians over its rounds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.gpu_summary import main

pytestmark = pytest.mark.unit


def write_run(folder: Path, tps_per_round: list[float]) -> None:
    folder.mkdir()
    rounds = [
        {
            "scenarios": {
                "seseragi_c1": {"tokens_per_second": tps / 10, "ttft_p50": 0.02, "itl_p50": 0.005},
                "seseragi_c16": {"tokens_per_second": tps, "ttft_p50": 0.1, "peak_rss_bytes": 9e8},
            },
            "errors": {},
        }
        for tps in tps_per_round
    ]
    rounds[-1]["errors"] = {"seseragi": "RuntimeError: boom"}
    config = {
        "workload": {"concurrencies": [1, 16]},
        "server_settings": {
            "SESERAGI_DEVICE": "cuda",
            "SESERAGI_DTYPE": "float16",
            "SESERAGI_QUANTIZATION": "none",
        },
    }
    (folder / "results.json").write_text(json.dumps({"config": config, "rounds": rounds}))


def test_table_has_a_line_per_stream_count_and_names_missing_runs(tmp_path: Path) -> None:
    write_run(tmp_path / "fp16", [1000.0, 3000.0, 2000.0])
    out = tmp_path / "summary.md"
    assert main([str(out), str(tmp_path / "fp16"), str(tmp_path / "nf4")]) == 0
    lines = out.read_text().splitlines()
    assert lines[2] == "| fp16 (cuda float16 none) | 1 | 200.0 | 20.0 | 5.0 | - |"
    assert lines[3] == "| fp16 (cuda float16 none) | 16 | 2000.0 | 100.0 | - | 900 |"
    assert lines[4] == "<!-- fp16 error: seseragi: RuntimeError: boom -->"
    assert lines[5] == "| nf4 | no results.json | - | - | - | - |"
