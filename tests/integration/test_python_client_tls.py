"""The client's TLS option against a real TLS listener serving the real engine."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterator

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from seseragi.api.servicer import GenerationServicer
from seseragi_client import NO_RETRY, Client, SeseragiError
from seseragi_contract.v1 import generation_pb2_grpc
from tests.helpers import CAPITAL_QUESTION
from tests.servers import ServerThread

pytestmark = pytest.mark.integration


def self_signed_for_localhost() -> tuple[bytes, bytes]:
    """A private key and a self-signed CA certificate for localhost and 127.0.0.1 (PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, certificate.public_bytes(serialization.Encoding.PEM)


async def start_tls_listener(
    server: ServerThread, key: bytes, certificate: bytes
) -> tuple[grpc.aio.Server, int]:
    """A second gRPC server, TLS only, whose servicer uses the running server's engine."""
    assert server.running is not None and server.running.backend is not None
    tls = grpc.aio.server()
    servicer = GenerationServicer(server.settings)
    servicer.attach(server.running.backend)
    generation_pb2_grpc.add_GenerationServiceServicer_to_server(servicer, tls)
    port = tls.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(key, certificate)]))
    await tls.start()
    return tls, port


@pytest.fixture
def tls_target(server: ServerThread) -> Iterator[tuple[str, bytes]]:
    key, certificate = self_signed_for_localhost()
    tls, port = server.call(start_tls_listener(server, key, certificate))
    yield f"localhost:{port}", certificate
    server.call(tls.stop(0))


def test_tls_with_the_servers_root_certificate(tls_target: tuple[str, bytes]) -> None:
    target, certificate = tls_target
    with Client(target, root_certificates=certificate, timeout=120) as client:
        answer = client.generate(messages=[("user", CAPITAL_QUESTION)], temperature=0.0)
    assert "Paris" in answer.text


@pytest.mark.parametrize("tls", [True, False], ids=["untrusted-certificate", "plaintext"])
def test_an_untrusted_or_plaintext_client_is_refused(
    tls_target: tuple[str, bytes], tls: bool
) -> None:
    target, _ = tls_target
    # System roots do not trust the self-signed certificate; plaintext cannot speak to TLS.
    with (
        Client(target, tls=tls, timeout=10, retry_policy=NO_RETRY) as client,
        pytest.raises(SeseragiError) as refused,
    ):
        client.model_info()
    assert refused.value.code == grpc.StatusCode.UNAVAILABLE
