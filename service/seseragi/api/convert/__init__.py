"""Protobuf requests to engine requests and engine events to protobuf messages, both ways."""
