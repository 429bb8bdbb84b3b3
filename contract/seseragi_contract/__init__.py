"""Seseragi's API contract: the Python code generated from protos/ (grpcio and protobuf only)."""
