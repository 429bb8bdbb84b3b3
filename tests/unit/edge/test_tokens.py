"""Development tokens carry the claims Envoy checks and are signed with the one local key."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest

from seseragi.config import Settings
from seseragi.edge import keys, tokens

pytestmark = pytest.mark.unit


def test_minted_token_verifies_with_the_dev_key(tmp_path: Path) -> None:
    settings = Settings(cache_dir=tmp_path)
    token = tokens.mint(settings, "alice", 3600, now=1_000_000)
    key = keys.dev_key(settings.edge_dir)
    claims = jwt.decode(
        token, key, algorithms=["HS256"], audience="seseragi", options={"verify_exp": False}
    )
    assert claims == {
        "iss": "seseragi-dev",
        "aud": "seseragi",
        "sub": "alice",
        "iat": 1_000_000,
        "exp": 1_003_600,
    }


def test_dev_key_is_created_once_and_private(tmp_path: Path) -> None:
    first = keys.dev_key(tmp_path / "edge")
    assert keys.dev_key(tmp_path / "edge") == first
    assert (tmp_path / "edge" / "dev-hs256.key").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("15m", 900), ("1h", 3600), ("7d", 604800)]
)
def test_ttl_parsing(text: str, seconds: int) -> None:
    assert tokens.parse_ttl(text) == seconds


def test_ttl_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="duration"):
        tokens.parse_ttl("soon")
