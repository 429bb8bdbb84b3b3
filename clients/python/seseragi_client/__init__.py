"""A small typed Python client for Seseragi over the generated gRPC stubs."""

from seseragi_client.client import Client, SeseragiError

__all__ = ["Client", "SeseragiError"]
