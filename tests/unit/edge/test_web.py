"""The chat page's server and URL, and the stack letting the page's origin through CORS."""

from __future__ import annotations

import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from seseragi.config import Settings
from seseragi.edge import stack
from seseragi.edge.web import PageServer, page_url

pytestmark = pytest.mark.unit


def test_page_url_carries_edge_and_token_in_the_fragment_only() -> None:
    url = urlsplit(page_url("http://127.0.0.1:3000", "http://127.0.0.1:8080", "a.b-c_d"))
    assert url.path == "/" and url.query == ""
    assert parse_qs(url.fragment) == {"edge": ["http://127.0.0.1:8080"], "token": ["a.b-c_d"]}


def test_page_server_serves_the_built_files(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<title>Seseragi chat</title>")
    with (
        PageServer("127.0.0.1", 0, tmp_path) as server,
        urllib.request.urlopen(f"{server.origin}/", timeout=10) as reply,
    ):
        assert reply.read() == b"<title>Seseragi chat</title>"


def test_an_unbuilt_page_names_the_command_that_builds_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="make web"):
        PageServer("127.0.0.1", 0, tmp_path)


def test_the_stack_adds_the_page_origin_to_cors_once() -> None:
    settings = Settings(web_port=3100, edge_cors_origins="https://app.example")
    origins = stack.edge_settings(settings).edge_cors_origins.split(",")
    assert origins == ["https://app.example", "http://127.0.0.1:3100"]
    again = stack.edge_settings(
        settings.model_copy(update={"edge_cors_origins": ",".join(origins)})
    )
    assert again.edge_cors_origins.split(",") == origins


def test_no_page_leaves_cors_alone() -> None:
    settings = Settings(web_port=-1, edge_cors_origins="https://app.example")
    assert stack.edge_settings(settings).edge_cors_origins == "https://app.example"


def test_the_stack_serves_the_page_from_the_web_dir_setting(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<title>Seseragi chat</title>")
    with stack.page_server(Settings(web_port=0, web_dir=tmp_path)) as page:
        assert isinstance(page, PageServer)
        with urllib.request.urlopen(f"{page.origin}/", timeout=10) as reply:
            assert reply.read() == b"<title>Seseragi chat</title>"


def test_the_stack_runs_without_a_built_page(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with stack.page_server(Settings(web_port=0, web_dir=tmp_path / "missing")) as page:
        assert not isinstance(page, PageServer)
    assert "run `make web`" in capsys.readouterr().err
