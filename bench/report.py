"""Presents results: the stdout table, the issue's target checks, results.json and the chart."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.metrics import ScenarioResult

GB = 1000**3
NAIVE_MULTIPLE = 6.0  # Seseragi at 16 concurrent calls: at least 6x the naive baseline
BATCH_FRACTION = 0.9  # ... and at least 0.9x the static batch
SOLO_FRACTION = 0.9  # Seseragi with one request at a time: at least 0.9x the naive baseline


@dataclass(frozen=True, slots=True)
class Target:
    """One of the issue's acceptance targets; `passed` is None when its scenario was not run."""

    name: str
    measured: float | None
    threshold: float | None
    passed: bool | None

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "FAIL", None: "SKIP (not run)"}[self.passed]


def by_name(results: Sequence[ScenarioResult]) -> dict[str, ScenarioResult]:
    return {result.name: result for result in results}


def ratio(result: ScenarioResult, base: ScenarioResult | None) -> float | None:
    if base is None or base.tokens_per_second <= 0:
        return None
    return result.tokens_per_second / base.tokens_per_second


def _at_least(name: str, measured: float | None, threshold: float | None) -> Target:
    if measured is None or threshold is None:
        return Target(name, measured, threshold, None)
    return Target(name, measured, threshold, measured >= threshold)


def _at_most(name: str, measured: float | None, threshold: float) -> Target:
    if measured is None:
        return Target(name, None, threshold, None)
    return Target(name, measured, threshold, measured <= threshold)


def targets(results: Sequence[ScenarioResult]) -> list[Target]:
    found = by_name(results)
    naive, batch = found.get("naive"), found.get("static_batch")
    c1, c16, c32 = (found.get(f"seseragi_c{n}") for n in (1, 16, 32))
    naive_tps = naive.tokens_per_second if naive else None
    batch_tps = batch.tokens_per_second if batch else None

    def tps(result: ScenarioResult | None) -> float | None:
        return result.tokens_per_second if result else None

    def times(value: float | None, factor: float) -> float | None:
        return value * factor if value is not None else None

    return [
        _at_least("c@16 tok/s >= 6x (a)", tps(c16), times(naive_tps, NAIVE_MULTIPLE)),
        _at_least("c@16 tok/s >= 0.9x (b)", tps(c16), times(batch_tps, BATCH_FRACTION)),
        _at_least("c@1 tok/s >= 0.9x (a)", tps(c1), times(naive_tps, SOLO_FRACTION)),
        _at_most("c@16 TTFT p95 <= 2 s", c16.ttft_p95 if c16 else None, 2.0),
        _at_most("c@32 peak RSS <= 2.5 GB", c32.peak_rss_bytes / GB if c32 else None, 2.5),
    ]


def _fmt(value: float | None, scale: float = 1.0, digits: int = 2) -> str:
    return "-" if value is None else f"{value * scale:.{digits}f}"


def table(results: Sequence[ScenarioResult]) -> str:
    found = by_name(results)
    naive, batch = found.get("naive"), found.get("static_batch")
    header = (
        f"{'scenario':<14}{'reqs':>5}{'tokens':>8}{'wall s':>9}{'tok/s':>9}{'x(a)':>7}{'x(b)':>7}"
        f"{'TTFT p50 s':>12}{'TTFT p95 s':>12}{'ITL p50 ms':>12}{'ITL p95 ms':>12}"
        f"{'peak RSS MB':>13}"
    )
    lines = [header, "-" * len(header)]
    for result in results:
        is_seseragi = result.name.startswith("seseragi")
        lines.append(
            f"{result.name:<14}{result.requests:>5}{result.tokens:>8}"
            f"{result.wall_seconds:>9.2f}{result.tokens_per_second:>9.1f}"
            f"{_fmt(ratio(result, naive) if is_seseragi else None):>7}"
            f"{_fmt(ratio(result, batch) if is_seseragi else None):>7}"
            f"{_fmt(result.ttft_p50, digits=3):>12}{_fmt(result.ttft_p95, digits=3):>12}"
            f"{_fmt(result.itl_p50, 1000, 1):>12}{_fmt(result.itl_p95, 1000, 1):>12}"
            f"{result.peak_rss_bytes / 1e6:>13.0f}"
        )
    lines.append("")
    lines.extend(f"  {result.name:<14}{result.label}" for result in results)
    return "\n".join(lines)


def targets_text(checks: Sequence[Target]) -> str:
    lines = ["Targets:"]
    for check in checks:
        detail = ""
        if check.measured is not None and check.threshold is not None:
            detail = f"  (measured {check.measured:.2f}, threshold {check.threshold:.2f})"
        lines.append(f"  {check.verdict:<15}{check.name}{detail}")
    return "\n".join(lines)


def write_json(
    path: Path, config: dict[str, Any], results: Sequence[ScenarioResult], checks: Sequence[Target]
) -> None:
    found = by_name(results)
    scenarios = []
    for result in results:
        entry = asdict(result)
        if result.name.startswith("seseragi"):
            entry["ratio_to_naive"] = ratio(result, found.get("naive"))
            entry["ratio_to_static_batch"] = ratio(result, found.get("static_batch"))
        scenarios.append(entry)
    document = {
        "config": config,
        "scenarios": scenarios,
        "targets": [{**asdict(check), "verdict": check.verdict} for check in checks],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


def _short(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def write_chart(path: Path, results: Sequence[ScenarioResult]) -> None:
    """Bar chart of tokens/s per scenario, with the 6x(a) and 0.9x(b) target lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    found = by_name(results)
    names = [
        r.name.replace("seseragi_c", "c@").replace("static_batch", "b").replace("naive", "a")
        for r in results
    ]
    values = [r.tokens_per_second for r in results]
    colors = ["tab:gray" if not r.name.startswith("seseragi") else "tab:blue" for r in results]
    figure, axes = plt.subplots(figsize=(8, 4.5))
    bars = axes.bar(names, values, color=colors)
    axes.bar_label(bars, labels=[_short(v) for v in values], padding=2)
    if (naive := found.get("naive")) is not None:
        level = NAIVE_MULTIPLE * naive.tokens_per_second
        axes.axhline(level, color="tab:red", linestyle="--", label=f"6x (a) = {_short(level)}")
    if (batch := found.get("static_batch")) is not None:
        level = BATCH_FRACTION * batch.tokens_per_second
        axes.axhline(level, color="tab:green", linestyle=":", label=f"0.9x (b) = {_short(level)}")
    axes.set_ylabel("aggregate tokens/s")
    axes.set_title("Throughput: (a) naive, (b) static batch, (c) Seseragi at concurrency N")
    axes.legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
