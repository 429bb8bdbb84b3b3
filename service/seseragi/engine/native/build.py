"""Compile a kernel's C++ source into a shared library once per machine, then load it.

`torch.utils.cpp_extension.load` would need ninja and a pybind module; these kernels register
plain operators, so one g++ call against PyTorch's headers and libraries is all it takes (about
6 s). The library lands under the cache directory, named by a hash of everything that shapes it,
and is written to a temporary name first so concurrent starts never load a half-written file.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch
import torch.utils.cpp_extension as cpp_extension

log = logging.getLogger(__name__)

BUILD_TIMEOUT_SECONDS = 300
# -march=native: the library is built where it runs (the cache key holds the CPU). The math flags
# let float sums vectorize without -ffast-math, whose startup code would flush denormals to zero
# for the whole process (PyTorch's operators included).
FLAGS = (
    "-O3",
    "-march=native",
    "-fopenmp",
    "-fno-math-errno",
    "-fno-trapping-math",
    "-fassociative-math",
    "-fno-signed-zeros",
    "-shared",
    "-fPIC",
    "-std=c++20",
)

_loaded: dict[str, Path] = {}  # kernel name -> the library this process loaded it from


class NativeBuildError(RuntimeError):
    """The kernel could not be compiled or loaded here; the message says why."""


@dataclass(frozen=True, slots=True)
class _Toolchain:
    """How every library is built here, and a fingerprint of all of it but the source."""

    command: tuple[str, ...]  # compiler, flags, includes: before the source
    linking: tuple[str, ...]  # libraries: after it
    fingerprint: bytes


def load(name: str, cache_dir: Path) -> Path:
    """Make the operators of `<name>.cpp` (`torch.ops.seseragi.*`) available in this process;
    the library it loaded from. A process loads each library once, whatever the cache_dir."""
    if name in _loaded:
        return _loaded[name]
    source = resources.files(__package__).joinpath(f"{name}.cpp").read_bytes()
    toolchain = _toolchain()
    key = hashlib.sha256(source + b"\0" + toolchain.fingerprint).hexdigest()[:20]
    library = cache_dir / "kernels" / f"{name}-{key}.so"
    if not library.exists():
        _compile(source, toolchain, library)
    try:
        torch.ops.load_library(str(library))  # type: ignore[no-untyped-call]
    except (OSError, RuntimeError) as error:
        raise NativeBuildError(f"loading {library} failed: {error}") from error
    _loaded[name] = library
    return library


@functools.cache
def _toolchain() -> _Toolchain:
    """Found once per process: every library shares the compiler, flags, PyTorch and CPU."""
    compiler = _compiler()
    command = [compiler, *FLAGS, f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}"]
    command += [f"-I{path}" for path in cpp_extension.include_paths()]
    libraries = cpp_extension.library_paths()
    linking = [f"-L{path}" for path in libraries] + ["-lc10", "-ltorch_cpu"]
    linking += [f"-Wl,-rpath,{path}" for path in libraries]
    parts = (
        " ".join(command + linking),
        torch.__version__,
        _compiler_version(compiler),
        platform.machine(),
        _cpu_flags(),
    )
    return _Toolchain(tuple(command), tuple(linking), "\0".join(parts).encode())


def _compiler() -> str:
    for candidate in (os.environ.get("CXX"), "g++", "c++"):
        if candidate and (found := shutil.which(candidate)):
            return found
    raise NativeBuildError("no C++ compiler (g++ or $CXX) on PATH")


def _compiler_version(compiler: str) -> str:
    try:
        return subprocess.run(
            [compiler, "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except OSError as error:
        raise NativeBuildError(f"{compiler} --version failed: {error}") from error


def _cpu_flags() -> str:
    """The CPU's model and feature flags: `-march=native` code runs only where they match."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor()
    wanted = ("model name", "flags")
    lines = {line.split(":", 1)[0].strip(): line for line in info.splitlines() if ":" in line}
    return "\n".join(lines.get(field, "") for field in wanted)


def _compile(source: bytes, toolchain: _Toolchain, library: Path) -> None:
    """The libraries come after the source: the linker keeps only what earlier inputs need."""
    try:
        library.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=library.parent) as work:
            source_path = Path(work) / "kernel.cpp"
            source_path.write_bytes(source)
            output = Path(work) / library.name
            log.info("compiling native kernel", extra={"library": str(library)})
            done = subprocess.run(
                [*toolchain.command, str(source_path), *toolchain.linking, "-o", str(output)],
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT_SECONDS,
                check=False,
            )
            if done.returncode != 0:
                raise NativeBuildError(f"compiling {library.name} failed: {done.stderr[-2000:]}")
            os.replace(output, library)
    except (OSError, subprocess.TimeoutExpired) as error:  # unwritable cache, hung compiler
        raise NativeBuildError(f"compiling {library.name} failed: {error}") from error
