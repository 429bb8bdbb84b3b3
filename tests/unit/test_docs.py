"""The docs hold together: the README stays a front page, every relative link lands on a file and
heading that exist, and the Japanese front page shows exactly the English one's commands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.servers import REPO_ROOT

pytestmark = pytest.mark.unit
README = REPO_ROOT / "README.md"
README_JA = REPO_ROOT / "README.ja.md"
PAGES = [
    README,
    README_JA,
    *sorted((REPO_ROOT / "docs").rglob("*.md")),
    *sorted((REPO_ROOT / "clients").glob("*/README.md")),
]
FENCE = re.compile(r"^```[a-z]*\n.*?^```$", flags=re.MULTILINE | re.DOTALL)
LINK = re.compile(r"\]\(([^)\s]+)\)")
FRONT_PAGE_LINES = 250


def prose(page: Path) -> str:
    """The page without its fenced blocks, whose `#` lines and brackets are not markdown."""
    return FENCE.sub("", page.read_text())


def anchors(page: Path) -> set[str]:
    """The ids GitHub gives the page's headings: lower case, punctuation dropped, spaces to '-'."""
    headings = re.findall(r"^#{1,6} (.+)$", prose(page), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in LINK.findall(prose(page)):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:: not ours to check offline
        path, _, fragment = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
            broken.append(f"{target}: no such heading")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    assert broken_links(page) == []


def test_the_readme_stays_a_front_page() -> None:
    lines = len(README.read_text().splitlines())
    assert lines <= FRONT_PAGE_LINES, f"README.md has {lines} lines: move detail into docs/"


def test_the_japanese_front_page_shows_the_same_commands_and_output() -> None:
    assert FENCE.findall(README_JA.read_text()) == FENCE.findall(README.read_text())
    assert "(README.ja.md)" in README.read_text()
