"""Checking presented tokens: the issuer signature (Ed25519, in a small thread pool — libsodium releases the
GIL, so two cores verify twice as fast), the key's windows, and that the token is the one the ledger
issued for that voucher. A verified token is remembered (bounded LRU keyed by the whole token), so a meal
voucher shown every school day is verified once per process, not every day."""

import threading
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Final

from ledger.vouchers.keys import IssuerKey
from ledger.vouchers.paseto import TokenError
from ledger.vouchers.results import RedemptionResult
from ledger.vouchers.signing import Purpose, verify_message
from ledger.vouchers.tokens import token_key_id, verify_token_signed

VERIFIED_TOKENS_MAX: Final = 100_000
# Below this many tokens a thread hand-off costs more than it saves.
PARALLEL_TOKENS_MIN: Final = 16

R = RedemptionResult
# (result, the voucher id when ok, key id, the token's signature when ok)
Checked = tuple[RedemptionResult, uuid.UUID | None, str, bytes]
# What is remembered of a verified token: voucher id, issued at (ledger ns), key id, signature. Only what
# redeeming needs, not the whole claims: every remembered object is one more for each full collection to
# scan, and 100,000 tokens' claims (with their programme ids) were 400,000 of them.
_Verified = tuple[uuid.UUID, int, str, bytes]


class TokenVerifier:
    def __init__(self, threads: int = 2) -> None:
        assert threads >= 1
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="token-verify")
        self._verified: OrderedDict[str, _Verified] = OrderedDict()
        self._lock = threading.Lock()

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def check(
        self, tokens: Sequence[str], keys: dict[str, IssuerKey], moment: Sequence[int]
    ) -> list[Checked]:
        """(result, voucher id, key id, signature) per token: the signature, the claims and the key's windows
        at each moment."""
        if len(tokens) >= PARALLEL_TOKENS_MIN:
            half = len(tokens) // 2
            first = self._pool.submit(self._check_all, tokens[:half], keys, moment[:half])
            rest = self._check_all(tokens[half:], keys, moment[half:])
            return first.result() + rest
        return self._check_all(tokens, keys, moment)

    def check_messages(self, messages: Sequence[tuple[bytes, Purpose, bytes, bytes]]) -> list[bool]:
        """Purpose-tagged signatures (public key, purpose, body, signature): terminals' requests. Split over
        the pool like tokens."""
        if len(messages) >= PARALLEL_TOKENS_MIN:
            half = len(messages) // 2
            first = self._pool.submit(_verify_all, messages[:half])
            return first.result() + _verify_all(messages[half:])
        return _verify_all(messages)

    def _check_all(
        self, tokens: Sequence[str], keys: dict[str, IssuerKey], moments: Sequence[int]
    ) -> list[Checked]:
        return [self._check_one(token, keys, at) for token, at in zip(tokens, moments, strict=True)]

    def _check_one(self, token: str, keys: dict[str, IssuerKey], moment: int) -> Checked:
        with self._lock:
            known = self._verified.get(token)
            if known is not None:  # least recently used goes first: a voucher shown daily stays
                self._verified.move_to_end(token)
        if known is None:
            try:
                key_id = token_key_id(token)
            except TokenError:
                return R.token_invalid, None, "", b""
            key = keys.get(key_id)
            if key is None:
                return R.issuer_key_unknown, None, key_id, b""
            try:
                claims, signature = verify_token_signed(key.public_key, token)
            except TokenError:
                return R.token_invalid, None, key_id, b""
            known = (claims.voucher_id, claims.issued_at, key_id, signature)
            with self._lock:
                self._verified[token] = known
                if len(self._verified) > VERIFIED_TOKENS_MAX:
                    self._verified.popitem(last=False)
        voucher_id, issued_at, key_id, signature = known
        key = keys.get(key_id)
        if key is None:  # removed from the key set since it was cached: never honoured again
            return R.issuer_key_unknown, None, key_id, b""
        result = key.judge(issued_at, moment)
        if result is not R.ok:
            return result, None, key_id, b""
        return result, voucher_id, key_id, signature


def _verify_all(messages: Sequence[tuple[bytes, Purpose, bytes, bytes]]) -> list[bool]:
    return [verify_message(key, purpose, body, signature) for key, purpose, body, signature in messages]
