"""structlog, configured once at start-up: JSON lines when stderr is not a terminal, readable console
output when it is.

Two processors stand between every log call and its output, whatever logged it:
* `redact_secrets`: a value under a key that names a secret (authorization, token, secret, password,
  api_key, ...) is replaced, and so is anything shaped like one of our API keys, client secrets or a JWT;
* `mask_iins`: any run of exactly 12 digits — an IIN (or a BIN) — keeps only its last four.
Both look into nested dicts and lists and into rendered exceptions. Integers are left alone (amounts in
tiyn are integers and may have 12 digits); an IIN is always carried as a string.
"""

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, Final, TextIO

import structlog

from ledger.identity import mask_iin

REDACTED: Final = "[redacted]"
_SECRET_KEYS: Final = re.compile(r"authorization|secret|password|token|api_?key|cookie", re.IGNORECASE)
_SECRET_SHAPES: Final = re.compile(
    r"\bamk_[0-9a-f]{16}_[A-Za-z0-9_-]+"  # API key
    r"|\bamcs_[A-Za-z0-9_-]+"  # OAuth2 client secret
    r"|\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"  # JWT
)
# Twelve digits standing alone: not part of a longer number, a hex string or a UUID's last group.
_TWELVE_DIGITS: Final = re.compile(r"(?<![0-9A-Fa-f-])[0-9]{12}(?![0-9A-Fa-f])")


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        value = _SECRET_SHAPES.sub(REDACTED, value)
        return _TWELVE_DIGITS.sub(lambda match: mask_iin(match.group()), value)
    if isinstance(value, dict):
        return {key: REDACTED if _is_secret_key(key) else _clean(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(item) for item in value]
    return value


def _is_secret_key(key: object) -> bool:
    return isinstance(key, str) and _SECRET_KEYS.search(key) is not None


def redact_and_mask(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """The processor: secrets redacted, IINs masked, in every value of the event."""
    for key, value in event_dict.items():
        event_dict[key] = REDACTED if _is_secret_key(key) else _clean(value)
    return event_dict


class _StandardError:
    """Whatever `sys.stderr` is when a line is written, not when logging was configured: a test runner or
    a CLI harness that swaps it (and closes its own) must not leave loggers writing to a closed file."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(log_format: str = "auto", level: str = "info", stream: TextIO | None = None) -> None:
    """`stream`: where lines go (tests capture them); default standard error."""
    output: Any = stream or _StandardError()
    as_json = log_format == "json" or (log_format == "auto" and not (stream or sys.stderr).isatty())
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_and_mask,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(file=output),
        cache_logger_on_first_use=True,
    )
