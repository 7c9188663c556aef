"""Reading a parsed JSON document field by field, with the path of whatever is wrong in the error.

Only the shapes :mod:`treasury.documents.machine_readable` writes are accepted: an object must have exactly
the expected keys, and each field exactly its type (an int is never a bool, a date is ``YYYY-MM-DD``).
"""

import datetime as dt
import uuid

from treasury.documents.rules import DocumentError, DocumentRule


def malformed(message: str) -> DocumentError:
    return DocumentError(DocumentRule.json_malformed, message)


class JsonObject:
    """A JSON object at `path` (``$.lines[2]``) with exactly `keys`; its getters check each field's type."""

    def __init__(self, value: object, path: str, keys: frozenset[str]) -> None:
        if not isinstance(value, dict):
            raise malformed(f"{path} is not an object")
        if value.keys() != keys:
            missing = sorted(keys - value.keys())
            unexpected = sorted(value.keys() - keys)
            raise malformed(f"{path} lacks fields {missing} or has unexpected fields {unexpected}")
        self.path = path
        self._value: dict[str, object] = value

    def text(self, key: str) -> str:
        value = self._value[key]
        if not isinstance(value, str):
            raise malformed(f"{self.path}.{key} is not a string")
        return value

    def optional_text(self, key: str) -> str | None:
        return None if self._value[key] is None else self.text(key)

    def integer(self, key: str) -> int:
        value = self._value[key]
        if type(value) is not int:  # bool is an int subclass; true is not 1 tiyn
            raise malformed(f"{self.path}.{key} is not an integer")
        return value

    def day(self, key: str) -> dt.date:
        text = self.text(key)
        try:
            value = dt.date.fromisoformat(text)
        except ValueError:
            raise malformed(f"{self.path}.{key} is not a date") from None
        if value.isoformat() != text:  # fromisoformat also takes 20261031 and 2026-W44-6
            raise malformed(f"{self.path}.{key} is not written YYYY-MM-DD")
        return value

    def member(self, key: str, keys: frozenset[str]) -> "JsonObject":
        return JsonObject(self._value[key], f"{self.path}.{key}", keys)

    def members(self, key: str, keys: frozenset[str]) -> list["JsonObject"]:
        return [
            JsonObject(item, f"{self.path}.{key}[{index}]", keys)
            for index, item in enumerate(self._array(key))
        ]

    def uuids(self, key: str) -> tuple[uuid.UUID, ...]:
        """Ids exactly as the encoder writes them: lower-case hyphenated UUID strings."""
        ids = []
        for index, item in enumerate(self._array(key)):
            where = f"{self.path}.{key}[{index}]"
            if not isinstance(item, str):
                raise malformed(f"{where} is not a string")
            try:
                value = uuid.UUID(item)
            except ValueError:
                raise malformed(f"{where} is not a UUID") from None
            if str(value) != item:
                raise malformed(f"{where} is not a UUID in lower-case hyphenated form")
            ids.append(value)
        return tuple(ids)

    def _array(self, key: str) -> list[object]:
        value = self._value[key]
        if not isinstance(value, list):
            raise malformed(f"{self.path}.{key} is not an array")
        return value
