"""Figures over interleaved rounds: medians with min-max, and ratios taken within each round.

A shared, noisy machine drifts between rounds; two engines measured minutes apart in the same
round saw the same weather, so a ratio is formed per round first and only then summarized.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# One round: scenario name -> its figures (a ScenarioResult as a dict, or a probe's values).
Round = Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class Spread:
    """The median of a figure over the rounds that measured it, and its range."""

    median: float
    low: float
    high: float
    count: int


@dataclass(frozen=True, slots=True)
class Cell:
    """One table cell: the figure over rounds, and its per-round ratio to the base engine."""

    value: Spread | None
    ratio: Spread | None


def spread(values: Sequence[float]) -> Spread | None:
    if not values:
        return None
    return Spread(statistics.median(values), min(values), max(values), len(values))


def figure(one_round: Round, scenario: str, metric: str) -> float | None:
    """A number from one round, or None when the scenario or figure is missing there."""
    value = one_round.get(scenario, {}).get(metric)
    return float(value) if isinstance(value, int | float) else None


def values(rounds: Sequence[Round], scenario: str, metric: str) -> list[float]:
    found = (figure(one_round, scenario, metric) for one_round in rounds)
    return [value for value in found if value is not None]


def ratios(
    rounds: Sequence[Round], scenario: str, metric: str, base_scenario: str, base_metric: str
) -> list[float]:
    """value / base for every round that has both and a positive base."""
    result: list[float] = []
    for one_round in rounds:
        value = figure(one_round, scenario, metric)
        base = figure(one_round, base_scenario, base_metric)
        if value is not None and base is not None and base > 0:
            result.append(value / base)
    return result


def cell(
    rounds: Sequence[Round], scenario: str, metric: str, base: tuple[str, str] | None = None
) -> Cell:
    ratio = spread(ratios(rounds, scenario, metric, *base)) if base is not None else None
    return Cell(spread(values(rounds, scenario, metric)), ratio)


def format_spread(value: Spread | None, scale: float = 1.0, digits: int = 1) -> str:
    """'median (low-high)', or the median alone when all rounds agree or only one ran."""
    if value is None:
        return "-"
    median = f"{value.median * scale:.{digits}f}"
    low, high = f"{value.low * scale:.{digits}f}", f"{value.high * scale:.{digits}f}"
    return median if low == high else f"{median} ({low}-{high})"


def format_cell(found: Cell, scale: float = 1.0, digits: int = 1) -> str:
    text = format_spread(found.value, scale, digits)
    if found.ratio is not None:
        text += f" x{found.ratio.median:.2f}"
    return text
