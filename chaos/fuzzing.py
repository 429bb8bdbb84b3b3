"""Random requests: messages of the right type with random field values, and random bytes."""

from __future__ import annotations

import random
import string
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

INTS = (0, 1, -1, 2, 7, 255, 2**31 - 1, -(2**31), 2**32 - 1, 2**63 - 1)
FLOATS = (0.0, -0.0, 1.4e-45, 1e-5, 0.5, 1.0, 2.0, -1.0, 1e30, float("inf"), float("nan"))
UNSIGNED = frozenset(
    (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_UINT64)
    + (FieldDescriptor.TYPE_FIXED32, FieldDescriptor.TYPE_FIXED64)
)
INT_BITS = {FieldDescriptor.TYPE_INT32: 32, FieldDescriptor.TYPE_SINT32: 32}
INT_BITS |= {FieldDescriptor.TYPE_SFIXED32: 32, FieldDescriptor.TYPE_UINT32: 32}
INT_BITS |= {FieldDescriptor.TYPE_FIXED32: 32}
TEXT = string.printable + "日本語😀\u0000\u202e\ud7ff"


def random_bytes(rng: random.Random) -> bytes:
    return rng.randbytes(rng.choice((0, 1, 3, 16, 200, 2000)))


def fill(message: Message, rng: random.Random, depth: int = 0) -> Message:
    """Set a random subset of `message`'s fields to random values (nested up to 3 deep)."""
    for field in message.DESCRIPTOR.fields:
        if rng.random() < 0.5 or field.containing_oneof is not None and rng.random() < 0.5:
            continue
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            _fill_map(getattr(message, field.name), field, rng)
        elif field.is_repeated:
            target = getattr(message, field.name)
            for _ in range(rng.randint(0, 3)):
                if field.message_type is not None:
                    if depth < 3:
                        fill(target.add(), rng, depth + 1)
                else:
                    target.append(_scalar(field, rng))
        elif field.message_type is not None:
            if depth < 3:
                fill(getattr(message, field.name), rng, depth + 1)
                getattr(message, field.name).SetInParent()
        else:
            setattr(message, field.name, _scalar(field, rng))
    return message


def _fill_map(target: Any, field: Any, rng: random.Random) -> None:
    key_field, value_field = (
        field.message_type.fields_by_name["key"],
        field.message_type.fields_by_name["value"],
    )
    for _ in range(rng.randint(0, 3)):
        key = _scalar(key_field, rng)
        if value_field.message_type is None:
            target[key] = _scalar(value_field, rng)


def _scalar(field: Any, rng: random.Random) -> object:
    kind = field.type
    if kind in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        return rng.choice(FLOATS) if rng.random() < 0.7 else rng.uniform(-10, 10)
    if kind == FieldDescriptor.TYPE_BOOL:
        return rng.random() < 0.5
    if kind == FieldDescriptor.TYPE_STRING:
        length = rng.choice((0, 1, 5, 40, 300))
        return (
            "".join(rng.choice(TEXT) for _ in range(length))
            .encode("utf-8", "surrogatepass")
            .decode("utf-8", "replace")
        )
    if kind == FieldDescriptor.TYPE_BYTES:
        return random_bytes(rng)
    if kind == FieldDescriptor.TYPE_ENUM:
        return rng.choice([v.number for v in field.enum_type.values] + [99])
    value = rng.choice(INTS) if rng.random() < 0.7 else rng.randint(-1000, 1000)
    bits = INT_BITS.get(kind, 64)
    if kind in UNSIGNED:
        return abs(value) % 2**bits
    return max(-(2 ** (bits - 1)), min(2 ** (bits - 1) - 1, value))
