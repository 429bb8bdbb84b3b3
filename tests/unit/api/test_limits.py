"""Each verified caller holds at most N generations; others are unaffected."""

from __future__ import annotations

import pytest

from seseragi.api.limits import CallerLimitReached, CallerSlots
from seseragi.subjects import ANONYMOUS

pytestmark = pytest.mark.unit


def test_a_caller_at_the_cap_is_refused_and_others_are_not() -> None:
    slots = CallerSlots(limit=2)
    slots.acquire("alice")
    slots.acquire("alice")
    with pytest.raises(CallerLimitReached, match="alice"):
        slots.acquire("alice")
    slots.acquire("bob")
    slots.release("alice")
    slots.acquire("alice")
    assert slots.in_flight("alice") == 2 and slots.in_flight("bob") == 1


def test_anonymous_callers_and_a_zero_cap_are_not_counted() -> None:
    slots = CallerSlots(limit=1)
    for _ in range(5):
        slots.acquire(ANONYMOUS)
    unlimited = CallerSlots(limit=0)
    for _ in range(5):
        unlimited.acquire("alice")
    assert slots.in_flight(ANONYMOUS) == 0 and unlimited.in_flight("alice") == 0
