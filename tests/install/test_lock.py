"""The hash locks hold exactly what the pyproject files pin; torch is installed on its own."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from tests.install import locks

pytestmark = pytest.mark.unit
RELOCK = "pyproject.toml and the lock disagree: run `make lock` and commit requirements/"


def direct(locked: dict[str, locks.Locked]) -> dict[str, str]:
    """Packages pip-compile pinned because one of the local distributions asks for them."""
    return {name: pin.version for name, pin in locked.items() if pin.via & locks.LOCAL}


def declared(*extras: str | None) -> dict[str, str]:
    wanted = [r for extra in extras for r in locks.requirements(extra)]
    return {
        canonicalize_name(r.name): locks.pinned_version(r)
        for r in wanted
        if canonicalize_name(r.name) != "torch"
    }


def test_service_lock_pins_exactly_the_runtime_dependencies() -> None:
    assert direct(locks.read_lock(locks.SERVICE_LOCK)) == declared(None), RELOCK


def test_dev_lock_pins_the_runtime_and_dev_dependencies() -> None:
    assert direct(locks.read_lock(locks.DEV_LOCK)) == declared(None, "dev"), RELOCK


def test_dev_lock_holds_every_runtime_package_at_the_service_lock_version() -> None:
    service, dev = locks.read_lock(locks.SERVICE_LOCK), locks.read_lock(locks.DEV_LOCK)
    assert {name: pin.version for name, pin in service.items()} == {
        name: dev[name].version for name in service if name in dev
    }
    assert set(service) <= set(dev)


@pytest.mark.parametrize("lock", [locks.SERVICE_LOCK, locks.DEV_LOCK], ids=lambda p: p.name)
def test_every_locked_package_has_hashes_and_torch_and_local_ones_are_left_out(lock: Path) -> None:
    locked = locks.read_lock(lock)
    assert len(locked) > 50
    assert [name for name, pin in locked.items() if not pin.hashes] == []
    assert all(re.fullmatch("[0-9a-f]{64}", h) for pin in locked.values() for h in pin.hashes)
    assert "torch" not in locked and not locks.LOCAL & set(locked)
    text = lock.read_text()
    assert "--index-url" not in text and "--find-links" not in text  # no machine's own sources
