"""The comparison table and issue 12's verdicts, from hand-made rounds."""

from __future__ import annotations

from typing import Any

from bench.report import RoundRecord, markdown, summarize_rounds, targets
from bench.workload import Workload

WORKLOAD = Workload.quick()  # 1, 4 and 8 streams
CONFIG = {"rounds": 2, "load_average_at_start": "1.00", "date": "d", "cpu": "c", "cpu_count": 2}


def scenario(tps: float, ttft: float | None = None, rss: int = 0) -> dict[str, Any]:
    return {"tokens_per_second": tps, "ttft_p50": ttft, "peak_rss_bytes": rss}


def one_round(index: int, vllm_many: float, seseragi_many: float) -> RoundRecord:
    record = RoundRecord(index, (1.0, 1.0, 1.0))
    record.scenarios = {
        "vllm_offline_c1": scenario(20.0),
        "vllm_offline_c4": scenario(vllm_many),
        "vllm_offline_stream_c4": scenario(vllm_many, ttft=1.0),
        "vllm_offline_stream_c8": scenario(vllm_many, rss=4_000_000_000),
        "seseragi_c1": scenario(10.0),
        "seseragi_c4": scenario(seseragi_many, ttft=2.0),
        "seseragi_c8": scenario(seseragi_many, rss=1_500_000_000),
        "seseragi_int8_c1": scenario(45.0),
        "seseragi_int4_c1": scenario(30.0),
    }
    return record


def test_ratios_are_per_round_and_targets_judge_them() -> None:
    summary = summarize_rounds([one_round(1, 100.0, 50.0), one_round(2, 200.0, 220.0)], WORKLOAD)
    seseragi = summary["cells"]["seseragi"]
    assert seseragi["many"].value is not None and seseragi["many"].value.median == 135.0
    assert seseragi["many"].ratio is not None and seseragi["many"].ratio.median == 0.8  # .5, 1.1
    verdicts = {name: passed for name, _, passed in targets(summary)}
    assert verdicts == {
        "streams aggregate >= 1.0x vLLM offline": False,
        "one stream >= 1.0x vLLM offline": False,
        "TTFT p50 <= vLLM offline's (ratio <= 1)": False,
        "peak RSS <= 2.5 GB": True,
        "int8 weights: one stream >= 2.0x vLLM offline fp32": True,  # 45 / 20
        "int4 weights: one stream >= 2.0x vLLM offline fp32": False,  # 30 / 20
    }


def test_the_table_shows_median_range_and_ratio() -> None:
    summary = summarize_rounds([one_round(1, 100.0, 50.0), one_round(2, 200.0, 220.0)], WORKLOAD)
    text = markdown(summary, CONFIG)
    row = next(line for line in text.splitlines() if line.startswith("| Seseragi"))
    assert "135.0 (50.0-220.0) x0.80" in row
    assert "| 10.0 x0.50 |" in row
    assert "NOT RUN" not in text.split("Issue 12 targets")[1]


def test_missing_engines_are_not_run_rather_than_failed() -> None:
    record = RoundRecord(1, (1.0, 1.0, 1.0))
    record.scenarios = {"seseragi_c4": scenario(50.0, ttft=2.0)}
    verdicts = [passed for _, _, passed in targets(summarize_rounds([record], WORKLOAD))]
    assert verdicts == [None] * 6
