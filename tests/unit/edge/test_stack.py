"""`make run` refuses to start a second stack over ports another one holds."""

from __future__ import annotations

import socket
from pathlib import Path

from seseragi.edge.stack import ports_in_use
from tests.edges import edge_settings, free_port


def test_ports_held_by_someone_else_are_named(tmp_path: Path) -> None:
    upstream = free_port()
    settings = edge_settings(tmp_path, [f"127.0.0.1:{upstream}"])
    assert ports_in_use(settings) == []
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", settings.edge_port))
        holder.listen()
        assert ports_in_use(settings) == [settings.edge_port]
