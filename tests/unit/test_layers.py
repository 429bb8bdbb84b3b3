"""Every import inside the service points down: a module imports its own layer or those below.

The layers, lowest first, name module prefixes (the longest match decides). `runtime/` spans two:
what every face shares (the backend, engine construction, the one loop over a request's events)
sits below jobs and the API; the boot and drain sequence sits above jobs but below the API; the
two programs (`app`: `seseragi serve`, `worker`: `seseragi worker`) assemble the API's faces and
sit on top, with the edge tooling and the CLI.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.servers import REPO_ROOT

pytestmark = pytest.mark.unit
SOURCE = REPO_ROOT / "service"
LAYERS = (
    # Foundations: settings, caller names, and the trace id every log line and error carries.
    (
        "seseragi",
        "seseragi.settings",
        "seseragi.config",
        "seseragi.subjects",
        "seseragi.telemetry.trace_context",
    ),
    ("seseragi.logs",),
    ("seseragi.model",),
    ("seseragi.engine",),
    ("seseragi.telemetry",),
    (
        "seseragi.runtime",
        "seseragi.runtime.backend",
        "seseragi.runtime.engines",
        "seseragi.runtime.relay",
    ),
    ("seseragi.cache", "seseragi.jobs"),
    ("seseragi.runtime.boot",),
    ("seseragi.api",),
    ("seseragi.runtime.app", "seseragi.runtime.worker", "seseragi.edge"),
    ("seseragi.cli",),
)


def modules(root: Path) -> dict[str, Path]:
    """Dotted name -> file of every module under `root` (a folder holding `seseragi/`)."""
    found = {}
    for path in sorted((root / "seseragi").rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def layer(module: str) -> int | None:
    """The index in LAYERS of `module`'s longest matching prefix; None when none matches."""
    best, best_length = None, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_length:
                best, best_length = index, len(prefix)
    return best


def imported(path: Path, known: dict[str, Path]) -> set[str]:
    """The seseragi modules `path` imports, lazy ones in functions too; `from a import b` names
    module `a.b` when there is one, else `a`."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                names.add(submodule if submodule in known else node.module)
    return {name for name in names if name == "seseragi" or name.startswith("seseragi.")}


def upward_imports(root: Path) -> list[str]:
    """Each import of `root`'s seseragi modules that runs up a layer, as `importer -> imported`."""
    known = modules(root)
    found = []
    for module, path in known.items():
        own = layer(module)
        assert own is not None, f"{module} is in no layer: add it to LAYERS"
        for target in sorted(imported(path, known)):
            theirs = layer(target)
            assert theirs is not None, f"{target} (imported by {module}) is in no layer"
            if theirs > own:
                found.append(f"{module} -> {target}")
    return found


def test_every_import_in_the_service_points_down() -> None:
    assert upward_imports(SOURCE) == []


def test_an_import_up_a_layer_is_found(tmp_path: Path) -> None:
    package = tmp_path / "seseragi"
    for folder, text in {
        "jobs": "from seseragi.api.errors import to_status\n",
        "api": "from seseragi.jobs import worker\n",
        "telemetry": "def lazy() -> None:\n    import seseragi.runtime.relay\n",
    }.items():
        (package / folder).mkdir(parents=True)
        (package / folder / "__init__.py").write_text("")
        (package / folder / "worker.py").write_text(text)
    (package / "runtime").mkdir()
    (package / "runtime" / "relay.py").write_text("")
    (package / "api" / "errors.py").write_text("")
    assert upward_imports(tmp_path) == [
        "seseragi.jobs.worker -> seseragi.api.errors",
        "seseragi.telemetry.worker -> seseragi.runtime.relay",
    ]
