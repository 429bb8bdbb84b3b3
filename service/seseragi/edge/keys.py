"""The local development signing key (HS256), generated once, and the JWKS Envoy reads it from."""

from __future__ import annotations

import base64
import json
import os
import secrets
from pathlib import Path

KEY_ID = "seseragi-dev"


def dev_key(edge_dir: Path) -> bytes:
    """The HS256 key in `edge_dir`, created (owner-only) on first use."""
    path = edge_dir / "dev-hs256.key"
    if not path.exists():
        edge_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(48))
    return path.read_text().strip().encode()


def hs256_jwks(key: bytes) -> str:
    """A JWKS holding one symmetric key, the form Envoy's jwt_authn accepts for HS256."""
    encoded = base64.urlsafe_b64encode(key).rstrip(b"=").decode()
    return json.dumps({"keys": [{"kty": "oct", "alg": "HS256", "kid": KEY_ID, "k": encoded}]})
