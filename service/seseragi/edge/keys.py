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


ES256_KEY_ID = "seseragi-dev-es256"


def dev_es256_key(edge_dir: Path) -> bytes:
    """The ES256 private key (PEM) in `edge_dir`, created owner-only on first use.

    Containers verify tokens against a mounted JWKS, which must hold only public keys: this key
    signs development tokens for them (`seseragi token --alg ES256`).
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    path = edge_dir / "dev-es256.pem"
    if not path.exists():
        edge_dir.mkdir(parents=True, exist_ok=True)
        pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
    return path.read_bytes()


def es256_jwks(private_pem: bytes) -> str:
    """A JWKS with the public half of `private_pem`: safe to mount into Envoy's container."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from jwt.algorithms import ECAlgorithm

    private = serialization.load_pem_private_key(private_pem, password=None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    key = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    key |= {"kid": ES256_KEY_ID, "alg": "ES256", "use": "sig"}
    return json.dumps({"keys": [key]}, indent=2) + "\n"
