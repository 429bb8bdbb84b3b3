"""Earlier home of the client; its names stay importable from here."""

from seseragi_client.errors import SeseragiError
from seseragi_client.requests import build_request
from seseragi_client.sync_client import Client

__all__ = ["Client", "SeseragiError", "build_request"]
