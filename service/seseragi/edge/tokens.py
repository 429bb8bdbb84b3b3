"""Development tokens signed with the local key, the kind `seseragi token` prints."""

from __future__ import annotations

import re
import time

import jwt

from seseragi.edge.keys import ES256_KEY_ID, KEY_ID, dev_es256_key, dev_key
from seseragi.settings import Settings

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(text: str) -> int:
    """Seconds in '90s', '15m', '1h' or '7d'."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"not a duration like 90s, 15m, 1h or 7d: {text!r}")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def mint(
    settings: Settings,
    subject: str,
    ttl_seconds: int,
    now: float | None = None,
    algorithm: str = "HS256",
) -> str:
    """A signed token; HS256 for a local run, ES256 for a container's mounted JWKS."""
    issued = int(time.time() if now is None else now)
    claims = {
        "iss": settings.edge_jwt_issuer,
        "aud": settings.edge_jwt_audience,
        "sub": subject,
        "iat": issued,
        "exp": issued + ttl_seconds,
    }
    if algorithm == "ES256":
        pem = dev_es256_key(settings.edge_dir)
        return jwt.encode(claims, pem, algorithm="ES256", headers={"kid": ES256_KEY_ID})
    key = dev_key(settings.edge_dir)
    return jwt.encode(claims, key, algorithm="HS256", headers={"kid": KEY_ID})
