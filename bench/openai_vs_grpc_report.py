"""The pure half of `bench.openai_vs_grpc`: per-round OpenAI/gRPC ratios, their medians, and
the markdown table. Ratios are formed within a round (both faces saw the same machine load)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bench.rounds import Round, Spread, format_spread, ratios, spread, values

GRPC, OPENAI = "grpc", "openai"
# (metric in a ScenarioResult, column title, scale to the unit shown, decimals)
METRICS: tuple[tuple[str, str, float, int], ...] = (
    ("tokens_per_second", "tok/s (aggregate)", 1.0, 1),
    ("ttft_p50", "TTFT p50 (ms)", 1000.0, 0),
    ("itl_p95", "ITL p95 (ms)", 1000.0, 1),
)


def round_ratios(one_round: Round) -> dict[str, float | None]:
    """OpenAI / gRPC for every metric of one round (None where a side lacks it)."""
    found: dict[str, float | None] = {}
    for metric, *_ in METRICS:
        ratio = ratios([one_round], OPENAI, metric, GRPC, metric)
        found[metric] = ratio[0] if ratio else None
    return found


def summarize(rounds: Sequence[Round]) -> dict[str, Any]:
    """Per metric: each side's median (min, max) over rounds, and the ratio's."""
    summary: dict[str, Any] = {}
    for metric, *_ in METRICS:
        summary[metric] = {
            GRPC: _as_dict(spread(values(rounds, GRPC, metric))),
            OPENAI: _as_dict(spread(values(rounds, OPENAI, metric))),
            "ratio": _as_dict(spread(ratios(rounds, OPENAI, metric, GRPC, metric))),
        }
    return summary


def markdown(rounds: Sequence[Round], config: Mapping[str, Any]) -> str:
    """A short page: what ran, one row per round and a median row, ratios as OpenAI/gRPC."""
    header = ["round"]
    for _, title, *_ in METRICS:
        header += [f"gRPC {title}", f"OpenAI {title}", "ratio"]
    lines = [
        "# OpenAI API vs gRPC, both through Envoy",
        "",
        f"{config['date']} · {config['machine']} · {config['rounds']} round(s),"
        f" {config['clients']} concurrent streaming clients, {config['prompt_tokens']}-token"
        f" prompts, exactly {config['max_new_tokens']} new tokens, greedy · `{config['command']}`",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for index, one_round in enumerate(rounds, 1):
        lines.append("| " + " | ".join([str(index), *_round_cells(one_round)]) + " |")
    lines.append("| " + " | ".join(["median", *_median_cells(rounds)]) + " |")
    if config.get("note"):
        lines += ["", str(config["note"])]
    return "\n".join(lines) + "\n"


def _round_cells(one_round: Round) -> list[str]:
    cells: list[str] = []
    found = round_ratios(one_round)
    for metric, _, scale, digits in METRICS:
        for side in (GRPC, OPENAI):
            cells.append(format_spread(spread(values([one_round], side, metric)), scale, digits))
        ratio = found[metric]
        cells.append("-" if ratio is None else f"{ratio:.2f}")
    return cells


def _median_cells(rounds: Sequence[Round]) -> list[str]:
    cells: list[str] = []
    for metric, _, scale, digits in METRICS:
        for side in (GRPC, OPENAI):
            cells.append(format_spread(spread(values(rounds, side, metric)), scale, digits))
        cells.append(format_spread(spread(ratios(rounds, OPENAI, metric, GRPC, metric)), 1, 2))
    return cells


def _as_dict(value: Spread | None) -> dict[str, float] | None:
    if value is None:
        return None
    return {"median": value.median, "low": value.low, "high": value.high, "rounds": value.count}
