"""Starting without an edge secret: refused where required, loudly warned off loopback."""

from __future__ import annotations

import logging

import pytest

from seseragi.api.identity import UnguardedStart, check_start, is_loopback

pytestmark = pytest.mark.unit


def test_a_required_secret_that_is_missing_refuses_the_start() -> None:
    with pytest.raises(UnguardedStart, match="SESERAGI_EDGE_SECRET"):
        check_start("127.0.0.1", "", require_edge_secret=True)
    check_start("0.0.0.0", "s3cret", require_edge_secret=True)  # noqa: S104 - a bind address


def test_an_open_address_without_a_secret_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        check_start("0.0.0.0", "", require_edge_secret=False)  # noqa: S104 - a bind address
        check_start("127.0.0.1", "", require_edge_secret=False)
    warnings = [r for r in caplog.records if "IDENTITY NOT ENFORCED" in r.getMessage()]
    assert len(warnings) == 1 and "0.0.0.0" in warnings[0].getMessage()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("seseragi", False),
    ],  # noqa: S104
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
