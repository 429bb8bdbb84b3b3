"""The table printed at the end of a run and docs/reliability.md, written from the same rows."""

from __future__ import annotations

import datetime
import os
import platform
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import psutil

from chaos.outcome import Durations, Outcome

COLUMNS = ("scenario", "load", "what must hold", "requests", "failed", "lost", "duplicated") + (
    "recovery (s)",
    "held",
    "took (s)",
)


def machine() -> str:
    memory_gib = psutil.virtual_memory().total / 2**30
    return (
        f"{platform.machine()}, {os.cpu_count()} CPU cores, {memory_gib:.0f} GiB,"
        f" {platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


def cells(row: Outcome) -> list[str]:
    def number(value: float | None, digits: int = 0) -> str:
        return "–" if value is None else f"{value:.{digits}f}"

    return [
        row.scenario,
        row.load,
        row.must_hold,
        str(row.requests),
        str(row.failed),
        number(row.lost),
        number(row.duplicated),
        number(row.recover_s, 1),
        "PASS" if row.passed else "FAIL",
        f"{row.duration_s:.0f}",
    ]


def table(rows: Sequence[Outcome]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    lines += ["| " + " | ".join(cells(row)) + " |" for row in rows]
    return "\n".join(lines)


def durations_text(durations: Durations, quick: bool) -> str:
    mode = "`python -m chaos.run --quick`" if quick else "`make chaos` (the issue's durations)"
    values = ", ".join(f"{key} = {value:g}" for key, value in asdict(durations).items())
    return f"{mode}: {values}"


FINDINGS = "## Findings"


def kept_findings(path: Path) -> str:
    """The page's hand-written findings section (diagnoses a run cannot write), kept across runs."""
    if not path.exists():
        return ""
    text = path.read_text()
    return "\n" + text[text.index(FINDINGS) :] if FINDINGS in text else ""


def write(path: Path, rows: Sequence[Outcome], durations: Durations, quick: bool) -> None:
    """docs/reliability.md: how to run the suite, then the figures of this run."""
    findings = kept_findings(path)
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    held = sum(row.passed for row in rows)
    details = "\n".join(f"- **{row.scenario}**: {row.detail}" for row in rows)
    path.write_text(
        f"""# Reliability: the fault suite

`make chaos` starts real processes — an AOF Redis (`appendfsync everysec`, `noeviction`, as the
job Redis ships), two `seseragi serve` replicas, Envoy through the containers' `graceful-envoy`
wrapper, and `seseragi worker` processes for jobs — hurts them one scenario at a time (rows of
issue 11 §7), and writes this page from the run. `python -m chaos.run --quick` runs the same
scenarios for seconds instead of minutes. A scenario's rule is never relaxed to pass: a FAIL
below is a finding.

## Last run

- date: {now}
- machine: {machine()} (shared with other work while it ran)
- durations: {durations_text(durations, quick)}
- held: {held} of {len(rows)}

{table(rows)}

"lost": jobs acknowledged by `SubmitJob` that never ended SUCCEEDED; "duplicated": jobs
created twice or whose result was delivered twice; "–": not applicable to the row.
"recovery": seconds from the fault until the stack serves at full strength again (each row says
what it measures).

## What each row saw

{details}
{findings}"""
    )
