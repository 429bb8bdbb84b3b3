"""The table `bench/gpu_check.sh` prints: Seseragi's streams per mode, medians over the rounds.

`bench.run`'s own table has one "many streams" column; the GPU check wants every stream count
(1/16/64) of every mode (fp16, NF4) side by side, so it reads each run's results.json.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any


def median(rounds: list[dict[str, Any]], scenario: str, metric: str) -> float | None:
    found = [
        value
        for record in rounds
        if (value := record["scenarios"].get(scenario, {}).get(metric)) is not None
    ]
    return statistics.median(found) if found else None


def _fmt(value: float | None, scale: float = 1.0, digits: int = 1) -> str:
    return "-" if value is None else f"{value * scale:.{digits}f}"


def table_rows(run_dir: Path) -> list[str]:
    """One line per stream count of one run (a folder holding results.json)."""
    document = json.loads((run_dir / "results.json").read_text())
    config = document["config"]
    settings = config["server_settings"]
    mode = f"{settings['SESERAGI_DEVICE']} {settings['SESERAGI_DTYPE']}"
    mode += f" {settings['SESERAGI_QUANTIZATION']}"
    rounds = document["rounds"]
    lines = []
    for streams in config["workload"]["concurrencies"]:
        scenario = f"seseragi_c{streams}"
        lines.append(
            f"| {run_dir.name} ({mode}) | {streams} "
            f"| {_fmt(median(rounds, scenario, 'tokens_per_second'))} "
            f"| {_fmt(median(rounds, scenario, 'ttft_p50'), 1000)} "
            f"| {_fmt(median(rounds, scenario, 'itl_p50'), 1000)} "
            f"| {_fmt(median(rounds, scenario, 'peak_rss_bytes'), 1e-6, 0)} |"
        )
    errors = [f"{key}: {text}" for record in rounds for key, text in record["errors"].items()]
    return lines + [f"<!-- {run_dir.name} error: {error} -->" for error in errors]


def markdown(run_dirs: list[Path]) -> str:
    lines = [
        "| run | streams | aggregate tok/s | TTFT p50 (ms) | ITL p50 (ms) | server RSS (MB) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for run_dir in run_dirs:
        if (run_dir / "results.json").exists():
            lines += table_rows(run_dir)
        else:
            lines.append(f"| {run_dir.name} | no results.json | - | - | - | - |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """`python -m bench.gpu_summary OUT RUN_DIR...`: print the table and write it to OUT."""
    if len(argv) < 2:
        print("usage: python -m bench.gpu_summary OUT.md RUN_DIR...", file=sys.stderr)
        return 64
    text = markdown([Path(name) for name in argv[1:]])
    Path(argv[0]).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
