"""Download one pinned file from a package index, checked against the sha256 pinned in the code.

A progress bar is drawn on the stream the caller names, when that stream is a terminal. The file is
written beside its final name and renamed only after its digest matched, so a cut download or a
tampered mirror never leaves a file that looks finished.
"""

from __future__ import annotations

import hashlib
import logging
import time
import urllib.request
from pathlib import Path
from typing import TextIO

from seseragi.model import package_index

log = logging.getLogger(__name__)

CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """No index offered the file, or what came did not match its pinned digest."""


def fetch(
    project: str, filename: str, sha256: str, dest_dir: Path, progress: TextIO | None = None
) -> Path:
    """Download `filename` into `dest_dir` from the first of pip's indexes that lists it."""
    tried = []
    for index_url in package_index.index_urls():
        try:
            url = package_index.file_url(index_url, project, filename)
        except OSError as error:  # an unreachable mirror: the next index may still have it
            log.warning("cannot read %s from %s: %s", project, index_url, error)
            url = None
        if url is not None:
            return download(url, dest_dir / filename, sha256, progress)
        tried.append(index_url)
    raise DownloadError(f"{filename} is on none of pip's indexes: {', '.join(tried)}")


def download(
    url: str, dest: Path, sha256: str, progress: TextIO | None = None, timeout: float = 60
) -> Path:
    """Stream `url` into `dest`, which exists afterwards only if its sha256 is `sha256`."""
    log.info("downloading %s", url)
    partial = dest.with_name(dest.name + ".part")
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=timeout) as response, partial.open("wb") as out:
        total = int(response.headers.get("Content-Length") or 0)
        bar = ProgressBar(dest.name, total, progress)
        while chunk := response.read(CHUNK):
            out.write(chunk)
            digest.update(chunk)
            bar.advance(len(chunk))
        bar.finish()
    if digest.hexdigest() != sha256:
        partial.unlink()
        raise DownloadError(f"{url} has sha256 {digest.hexdigest()}, not the pinned {sha256}")
    partial.replace(dest)
    return dest


class ProgressBar:
    """`name [#####.....]  48%  45.1/98.4 MB` redrawn in place, at most ten times a second."""

    WIDTH = 30

    def __init__(self, name: str, total: int, stream: TextIO | None) -> None:
        self.name, self.total = name, total
        self.stream = stream if stream is not None and stream.isatty() else None
        self.done = 0
        self._drawn_at = 0.0

    def advance(self, size: int) -> None:
        self.done += size
        now = time.monotonic()
        if self.stream is not None and now - self._drawn_at >= 0.1:
            self._drawn_at = now
            self.stream.write("\r" + self.line())
            self.stream.flush()

    def finish(self) -> None:
        if self.stream is not None:
            self.stream.write("\r" + self.line() + "\n")
            self.stream.flush()

    def line(self) -> str:
        if not self.total:  # the server sent no Content-Length
            return f"{self.name}  {self.done / 1e6:.1f} MB"
        filled = self.WIDTH * self.done // self.total
        percent = 100 * self.done // self.total
        bar = "#" * filled + "." * (self.WIDTH - filled)
        return f"{self.name} [{bar}] {percent:3d}%  {self.done / 1e6:.1f}/{self.total / 1e6:.1f} MB"
