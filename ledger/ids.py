"""The one id type: a 128-bit UUID, time-ordered (version 7 layout) so new rows land at the right edge of
the primary-key index instead of scattering across it."""

import os
import time
import uuid

ZERO_ID = uuid.UUID(int=0)
MAX_ID = uuid.UUID(int=2**128 - 1)


def new_id() -> uuid.UUID:
    """A fresh id: 48 bits of Unix milliseconds, version 7, variant, then 74 random bits."""
    milliseconds = time.time_ns() // 1_000_000
    random_bits = int.from_bytes(os.urandom(10), "big")
    value = (milliseconds & (2**48 - 1)) << 80
    value |= 0x7 << 76
    value |= ((random_bits >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= random_bits & (2**62 - 1)
    return uuid.UUID(int=value)


def is_reserved_id(value: uuid.UUID) -> bool:
    """Zero and all-ones are never valid ids: zero is 'unset', all-ones is a sentinel."""
    return value in (ZERO_ID, MAX_ID)


def derived_id(namespace: uuid.UUID, *parts: object) -> uuid.UUID:
    """A deterministic id (UUIDv5) from a namespace and parts: a retried step gets the same id, so it is
    applied once (the ledger answers `exists`)."""
    return uuid.uuid5(namespace, ":".join(str(part) for part in parts))
