"""Pieces every audience's schemas share: ledger time as RFC 3339, base64 for bytes, result-code names."""

import base64
import binascii
import datetime as dt
import unicodedata
from collections.abc import Iterable
from enum import IntEnum
from typing import Annotated, Any

from pydantic import AfterValidator

from ledger.clock import timestamp_to_datetime


def at(timestamp_ns: int) -> dt.datetime:
    """A ledger timestamp (nanoseconds since the Unix epoch) as an aware UTC datetime."""
    return timestamp_to_datetime(timestamp_ns)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes | None:
    """Bytes from standard or URL-safe base64, padded or not; None when it is not base64."""
    compact = text.strip().replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def enum_names(members: Iterable[IntEnum], nullable: bool = False) -> dict[str, Any]:
    """A JSON Schema fragment: a string that is one of these result codes' names (or null)."""
    names: list[str | None] = [member.name for member in members]
    return {"enum": [*names, None] if nullable else names}


def plain_text(value: str) -> str:
    """Free text the ledger stores and logs: Unicode NFC (the audit log's canonical form never normalises
    silently), no NUL (PostgreSQL text cannot hold it), no lone surrogate (not UTF-8)."""
    if "\x00" in value or any("\ud800" <= char <= "\udfff" for char in value):
        raise ValueError("text may not contain NUL or lone surrogates")
    if not unicodedata.is_normalized("NFC", value):
        raise ValueError("text must be in Unicode NFC")
    if not value.strip():
        raise ValueError("text must not be blank")
    return value


PlainText = Annotated[str, AfterValidator(plain_text)]
