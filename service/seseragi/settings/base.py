"""The one place settings meet the environment: `SESERAGI_*` variables and `.env`."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class SeseragiSettings(BaseSettings):
    """Base of every settings class, so each reads the same prefix and `.env` file."""

    model_config = SettingsConfigDict(env_prefix="SESERAGI_", env_file=".env", extra="ignore")
