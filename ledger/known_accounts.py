"""What a `Ledger` remembers of the accounts it has read, so a batch need not read them again.

An account's id, asset, code and balance-limit flags never change (the guard trigger and
`ledger_refuse_limit_change` hold that at the database), and an account is never deleted. So once read:

- an account with a balance limit is known to be one: the next batch locks it (it must read its counters
  under lock anyway) without first probing every other account for a limit;
- an open account without a limit is remembered with its asset and code, and the next batch decides on it
  without reading it at all: as open, with counters counted from zero (`AccountState.remembered`).

Being open is the one thing that can change behind the memory's back (another process's closing transfer).
It is checked where it matters: `ledger_apply_deltas` refuses rows on an account that is no longer open,
or whose counters would overflow, and the request is retried with fresh reads; and a batch whose refusals
or failed chains leaned on a remembered account is decided again from a fresh read (`TransferBatch.unsure`).
"""

import threading

from ledger.accounts import AccountFlags

# Past this many remembered accounts (~150 bytes each) the memory starts again empty: a bound on memory,
# not a cliff (the next batches read what they touch and remember it again).
KNOWN_ACCOUNTS_MAX = 200_000
_LIMITS = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS | AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS)
_CLOSED = int(AccountFlags.CLOSED)


class KnownAccounts:
    """Shared by every thread of one `Ledger`; keyed by `UUID.int`."""

    def __init__(self, size_max: int = KNOWN_ACCOUNTS_MAX) -> None:
        self.size_max = size_max
        # open accounts without a balance limit -> (asset, code)
        self.plain: dict[int, tuple[int, int]] = {}
        # accounts with a balance limit
        self.limited: set[int] = set()
        self._lock = threading.Lock()

    def remember_read(self, rows: list[tuple[int, int, int, int]]) -> None:
        """Accounts as read: (id, asset, code, flags). A closed one is forgotten: its state can change."""
        with self._lock:
            if len(self.plain) + len(self.limited) + len(rows) > self.size_max:
                self.plain.clear()
                self.limited.clear()
            for account_id, asset, code, flags in rows:
                if flags & _LIMITS:
                    self.limited.add(account_id)
                elif flags & _CLOSED:
                    self.plain.pop(account_id, None)
                else:
                    self.plain[account_id] = (asset, code)

    def forget(self, account_ids: list[int]) -> None:
        """Accounts whose closed flag a batch changed."""
        with self._lock:
            for account_id in account_ids:
                self.plain.pop(account_id, None)
