"""Read pyproject pins and pip-compile locks, so the install tests compare like with like."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.servers import REPO_ROOT

LOCAL = {"seseragi", "seseragi-contract", "seseragi-client"}
PYPROJECTS = [
    REPO_ROOT / "pyproject.toml",
    *(REPO_ROOT / p / "pyproject.toml" for p in ("contract", "clients/python")),
]
SERVICE_LOCK = REPO_ROOT / "requirements" / "service.lock"
DEV_LOCK = REPO_ROOT / "requirements" / "dev.lock"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


@dataclass
class Locked:
    version: str
    hashes: list[str] = field(default_factory=list)
    via: set[str] = field(default_factory=set)


def requirements(
    extra: str | None = None, pyprojects: list[Path] = PYPROJECTS
) -> list[Requirement]:
    """The distributions' dependencies (runtime, or those of `extra`), local ones left out."""
    found = []
    for path in pyprojects:
        project = tomllib.loads(path.read_text())["project"]
        if extra is None:
            listed = project["dependencies"]
        else:
            listed = project.get("optional-dependencies", {}).get(extra, [])
        found += [Requirement(text) for text in listed]
    return [r for r in found if canonicalize_name(r.name) not in LOCAL]


def pinned_version(requirement: Requirement) -> str:
    (spec,) = requirement.specifier
    assert spec.operator == "==", f"{requirement} is not pinned exactly"
    return spec.version


def read_lock(path: Path) -> dict[str, Locked]:
    """Each pinned package with its hashes and what pip-compile says it is there for."""
    locked: dict[str, Locked] = {}
    current: Locked | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if match := PIN.match(raw):
            current = locked[canonicalize_name(match[1])] = Locked(match[2])
        elif current is not None and line.startswith("--hash=sha256:"):
            current.hashes.append(line.removeprefix("--hash=sha256:").rstrip(" \\"))
        elif current is not None and line.startswith("#") and line != "# via":
            current.via.add(line.lstrip("#").strip().removeprefix("via ").strip())
        elif not line:
            current = None
    return locked
