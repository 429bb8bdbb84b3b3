"""The OpenAI-vs-gRPC report: ratios within each round, their median, and the table."""

from __future__ import annotations

import pytest

from bench import openai_vs_grpc_report as report

pytestmark = pytest.mark.unit


def _side(tok_s: float, ttft: float, itl: float) -> dict[str, float]:
    return {"tokens_per_second": tok_s, "ttft_p50": ttft, "itl_p95": itl}


ROUNDS = [
    {"grpc": _side(100.0, 0.200, 0.050), "openai": _side(90.0, 0.300, 0.055)},
    {"grpc": _side(50.0, 0.400, 0.100), "openai": _side(40.0, 0.400, 0.120)},
    {"grpc": _side(80.0, 0.100, 0.040), "openai": _side(76.0, 0.150, 0.040)},
]
CONFIG = {
    "date": "2026-12-01 11:00 UTC",
    "machine": "Test CPU, 2 cores, Linux",
    "rounds": 3,
    "clients": 16,
    "prompt_tokens": 48,
    "max_new_tokens": 16,
    "command": "python -m bench.openai_vs_grpc --quick",
    "note": "Noisy: another benchmark ran.",
}


def test_a_round_ratio_is_openai_over_grpc() -> None:
    assert report.round_ratios(ROUNDS[0]) == pytest.approx(
        {"tokens_per_second": 0.9, "ttft_p50": 1.5, "itl_p95": 1.1}
    )


def test_a_missing_side_gives_no_ratio() -> None:
    assert report.round_ratios({"grpc": _side(1, 1, 1)})["tokens_per_second"] is None


def test_the_summary_takes_the_median_of_per_round_ratios_not_of_medians() -> None:
    summary = report.summarize(ROUNDS)
    tok_s = summary["tokens_per_second"]
    # per-round ratios 0.9, 0.8, 0.95 -> 0.9; the ratio of medians would be 76/80 = 0.95
    assert tok_s["ratio"] == {"median": pytest.approx(0.9), "low": 0.8, "high": 0.95, "rounds": 3}
    assert tok_s["grpc"]["median"] == 80.0 and tok_s["openai"]["median"] == 76.0


def test_the_table_has_a_row_per_round_a_median_row_and_the_setting() -> None:
    page = report.markdown(ROUNDS, CONFIG)
    lines = page.splitlines()
    rows = [line for line in lines if line.startswith("| ")]
    assert len(rows) == 1 + 3 + 1  # header, rounds, median
    assert rows[1].split(" | ")[:4] == ["| 1", "100.0", "90.0", "0.90"]
    assert rows[1].split(" | ")[4:7] == ["200", "300", "1.50"]
    assert rows[-1].startswith("| median | 80.0 (50.0-100.0) | 76.0 (40.0-90.0) | 0.90 (0.80-0.95)")
    assert "Test CPU, 2 cores" in page and "exactly 16 new tokens" in page
    assert lines[-1] == "Noisy: another benchmark ran."
