"""Seseragi: a gRPC service that streams tokens from a language model with continuous batching."""

__version__ = "0.1.0"
