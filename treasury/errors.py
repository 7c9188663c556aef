"""Treasury refusals: a stable code, a message that says which rule failed, and the HTTP status the API
gives it (one table, in api/problems.py, maps every refusal; no route has its own).

Raised inside a unit of work, a refusal rolls the whole transaction back: bad input changes nothing."""

from enum import StrEnum


class RefusalKind(StrEnum):
    """How the API answers: not found (404), conflict with the current state (409), invalid (422),
    forbidden by the four-eyes rule (403)."""

    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    INVALID = "invalid"
    FORBIDDEN = "forbidden"


class Refused(Exception):
    """A treasury operation refused. `code` is stable (clients branch on it); `message` is for people."""

    def __init__(self, code: str, message: str, kind: RefusalKind = RefusalKind.INVALID) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.kind = kind

    def __reduce__(self) -> tuple[type["Refused"], tuple[str, str, RefusalKind]]:
        # A refusal raised in an issuance worker process travels back to the parent by pickle.
        return (Refused, (self.code, self.message, self.kind))
