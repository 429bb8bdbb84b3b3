"""Kept so `from seseragi.config import Settings` keeps working; the classes live in settings/."""

from seseragi.settings import DEFAULT_MODEL, Settings

__all__ = ["DEFAULT_MODEL", "Settings"]
