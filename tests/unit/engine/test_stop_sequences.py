"""Stop sequences match across chunk boundaries, cut exactly, and never leak a prefix."""

from __future__ import annotations

import pytest

from seseragi.engine.stop_sequences import StopSequenceMatcher

pytestmark = pytest.mark.unit


def feed(matcher: StopSequenceMatcher, chunks: list[str]) -> tuple[list[str], str | None]:
    emitted: list[str] = []
    for chunk in chunks:
        text, stop = matcher.push(chunk)
        emitted.append(text)
        if stop is not None:
            return emitted, stop
    emitted.append(matcher.flush())
    return emitted, None


def test_match_spanning_chunks_cuts_exactly() -> None:
    matcher = StopSequenceMatcher(("END",), include_stop_sequence=False)
    emitted, stop = feed(matcher, ["hello E", "N", "D tail"])
    assert stop == "END"
    assert "".join(emitted) == "hello "


def test_prefix_is_held_back_until_known_not_to_match() -> None:
    matcher = StopSequenceMatcher(("END",), include_stop_sequence=False)
    assert matcher.push("hello E") == ("hello ", None)
    assert matcher.push("N") == ("", None)
    assert matcher.push("ough") == ("ENough", None)


def test_include_stop_sequence_keeps_the_match() -> None:
    matcher = StopSequenceMatcher(("\n\n",), include_stop_sequence=True)
    emitted, stop = feed(matcher, ["a\n", "\nb"])
    assert (stop, "".join(emitted)) == ("\n\n", "a\n\n")


def test_earliest_of_several_matches_wins() -> None:
    matcher = StopSequenceMatcher(("world", "lo w"), include_stop_sequence=False)
    assert matcher.push("hello world") == ("hel", "lo w")


def test_flush_releases_held_text_at_the_end() -> None:
    matcher = StopSequenceMatcher(("STOP",), include_stop_sequence=False)
    assert matcher.push("abc ST") == ("abc ", None)
    assert matcher.flush() == "ST"


def test_no_stop_sequences_passes_text_through() -> None:
    matcher = StopSequenceMatcher((), include_stop_sequence=False)
    assert matcher.push("anything") == ("anything", None)
