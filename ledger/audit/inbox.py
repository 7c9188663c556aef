"""The audit inbox: every business transaction appends its events here, in the same transaction, as one
row of u32-length-prefixed event bytes. The integrator moves them into the log; no writer waits for it."""

import struct
from collections.abc import Sequence
from typing import Any

import psycopg

_LENGTH = struct.Struct(">I")
_INSERT = "INSERT INTO audit_inbox (events, event_count) VALUES (%b, %s)"


def frame_events(events: Sequence[bytes]) -> bytes:
    pack = _LENGTH.pack
    return b"".join([pack(len(event)) + event for event in events])


def split_events(framed: bytes) -> list[bytes]:
    """The events of one inbox row, exactly as written."""
    events = []
    offset = 0
    while offset < len(framed):
        (length,) = _LENGTH.unpack_from(framed, offset)
        offset += 4
        events.append(framed[offset : offset + length])
        offset += length
    assert offset == len(framed), "inbox row ends inside an event"
    return events


def append_events(connection: psycopg.Connection[Any], events: Sequence[bytes]) -> None:
    """Queue `events` for the log inside the caller's transaction (pipelines cleanly: no result read)."""
    if events:
        connection.execute(_INSERT, (frame_events(events), len(events)))
