"""Every package the service imports is one it declares at run time, not one a dev tool brings."""

from __future__ import annotations

import ast
import functools
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.install import locks
from tests.servers import REPO_ROOT

pytestmark = pytest.mark.unit
FIRST_PARTY = {"seseragi", "seseragi_contract", "seseragi_client"}
# Each distribution's code, and the pyproject.toml that must declare what it imports.
SOURCES = {
    "service": (REPO_ROOT / "service", REPO_ROOT / "pyproject.toml"),
    "contract": (REPO_ROOT / "contract", REPO_ROOT / "contract" / "pyproject.toml"),
    "client": (REPO_ROOT / "clients" / "python", REPO_ROOT / "clients/python/pyproject.toml"),
}


def imported_modules(root: Path) -> dict[str, Path]:
    """Each absolute import under `root` (lazy ones in functions too), with a file that has it."""
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                # `from google.rpc import status_pb2` names a module of a namespace package;
                # an imported attribute falls back to its module in owner().
                names = [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            for name in names:
                top = name.partition(".")[0]
                if top not in sys.stdlib_module_names and top not in FIRST_PARTY:
                    found.setdefault(name, path)
    return found


@functools.cache
def module_owners() -> dict[str, str]:
    """Dotted module name -> the installed distribution whose files define it."""
    owners: dict[str, str] = {}
    for dist in metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"])
        for file in dist.files or []:
            module = _module_name(str(file))
            if module:
                owners.setdefault(module, name)
    return owners


def _module_name(path: str) -> str | None:
    """`google/rpc/status_pb2.py` -> `google.rpc.status_pb2`; None for what is no module."""
    folder, _, leaf = path.rpartition("/")
    if path.startswith("..") or ".dist-info" in folder or not leaf.endswith((".py", ".so", ".pyi")):
        return None
    stem = leaf.partition(".")[0]
    parts = folder.split("/") if folder else []
    return ".".join(parts if stem == "__init__" else [*parts, stem]) or None


def owner(module: str, owners: dict[str, str]) -> str | None:
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        if found := owners.get(".".join(parts[:end])):
            return found
    return None


def declared_at_run_time(pyproject: Path) -> set[str]:
    """The runtime dependencies, and what the extras they ask for (PyJWT[crypto]) add."""
    names = set()
    for requirement in locks.requirements(pyprojects=[pyproject]):
        names.add(canonicalize_name(requirement.name))
        for text in metadata.requires(requirement.name) or []:
            extra_requirement = Requirement(text)
            marker = extra_requirement.marker
            if marker and any(marker.evaluate({"extra": e}) for e in requirement.extras):
                names.add(canonicalize_name(extra_requirement.name))
    return names


@pytest.mark.parametrize("distribution", sorted(SOURCES))
def test_every_import_is_a_declared_runtime_dependency(distribution: str) -> None:
    source, pyproject = SOURCES[distribution]
    owners, allowed = module_owners(), declared_at_run_time(pyproject)
    undeclared = {}
    for module, path in imported_modules(source).items():
        found = owner(module, owners)
        assert found is not None, f"{module} ({path}) is installed by no distribution"
        if found not in allowed:
            undeclared[module] = f"{found} ({path.relative_to(REPO_ROOT)})"
    assert undeclared == {}, "imported at run time but not a runtime dependency in pyproject.toml"
