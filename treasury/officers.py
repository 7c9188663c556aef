"""Who did it: the officer's name as the audit log and the four-eyes rule see it."""

import unicodedata
from typing import Final

from treasury.errors import Refused

OFFICER_CHARS_MAX: Final = 200


def officer_name(name: str) -> str:
    """The officer's name without edge spaces, NFC; refused if empty, too long or with control characters.
    Two names are the same person when they agree ignoring case (`same_officer`)."""
    text = unicodedata.normalize("NFC", name.strip()) if isinstance(name, str) else ""
    if not 0 < len(text) <= OFFICER_CHARS_MAX or any(unicodedata.category(c) == "Cc" for c in text):
        raise Refused(
            "officer_invalid", f"an officer is named by 1 to {OFFICER_CHARS_MAX} printable characters"
        )
    return text


def same_officer(first: str, second: str) -> bool:
    return first.strip().lower() == second.strip().lower()
