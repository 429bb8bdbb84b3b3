"""Round statistics: medians with ranges, and ratios formed within each round."""

from __future__ import annotations

from bench.rounds import Cell, Spread, cell, format_cell, format_spread, ratios, spread, values

ROUNDS = [
    {"a": {"tps": 10.0}, "base": {"tps": 20.0}},
    {"a": {"tps": 30.0}, "base": {"tps": 30.0}},
    {"a": {"tps": 12.0}},  # the base failed this round: no ratio from it
    {"a": {"tps": None}, "base": {"tps": 40.0}},
]


def test_spread_is_median_and_range() -> None:
    assert spread([3.0, 1.0, 2.0]) == Spread(2.0, 1.0, 3.0, 3)
    assert spread([1.0, 4.0]) == Spread(2.5, 1.0, 4.0, 2)
    assert spread([]) is None


def test_values_skip_rounds_without_the_figure() -> None:
    assert values(ROUNDS, "a", "tps") == [10.0, 30.0, 12.0]
    assert values(ROUNDS, "missing", "tps") == []


def test_ratios_pair_figures_of_the_same_round_only() -> None:
    assert ratios(ROUNDS, "a", "tps", "base", "tps") == [0.5, 1.0]


def test_ratio_median_is_of_per_round_ratios_not_of_medians() -> None:
    rounds = [
        {"a": {"t": 10.0}, "b": {"t": 10.0}},
        {"a": {"t": 20.0}, "b": {"t": 40.0}},
        {"a": {"t": 30.0}, "b": {"t": 15.0}},
    ]
    found = cell(rounds, "a", "t", base=("b", "t"))
    assert found.value == Spread(20.0, 10.0, 30.0, 3)
    assert found.ratio == Spread(1.0, 0.5, 2.0, 3)  # medians alone would give 20/15


def test_zero_base_gives_no_ratio() -> None:
    assert ratios([{"a": {"t": 1.0}, "b": {"t": 0.0}}], "a", "t", "b", "t") == []


def test_format_shows_range_only_when_rounds_differ() -> None:
    assert format_spread(Spread(2.0, 1.0, 3.0, 3)) == "2.0 (1.0-3.0)"
    assert format_spread(Spread(2.0, 2.0, 2.0, 1)) == "2.0"
    assert format_spread(None) == "-"
    assert format_spread(Spread(0.5, 0.25, 1.0, 3), scale=1000, digits=0) == "500 (250-1000)"


def test_format_cell_appends_the_ratio() -> None:
    found = Cell(Spread(8.0, 8.0, 8.0, 1), Spread(0.5, 0.5, 0.5, 1))
    assert format_cell(found) == "8.0 x0.50"
    assert format_cell(Cell(None, None)) == "-"


def test_text_is_not_a_figure() -> None:
    assert values([{"a": {"t": "12"}}, {"a": {"t": 3}}], "a", "t") == [3.0]
