"""Every bound the ledger enforces, with its unit in the name. Past a limit is an error, never a slowdown."""

from typing import Final

# Same bound as TigerBeetle's request size: a request carries at most this many events.
BATCH_EVENTS_MAX: Final = 8189

# 10^15 tiyn = 10 trillion tenge: larger than any single budget line, and small enough that
# BATCH_EVENTS_MAX of them still fit in a PostgreSQL bigint (8189 * 10^15 < 2^63).
AMOUNT_TIYN_MAX: Final = 10**15

# An account's counters are PostgreSQL bigints.
COUNTER_TIYN_MAX: Final = 2**63 - 1

# A pending transfer may reserve value for at most 400 days (a programme year plus a margin).
PENDING_TIMEOUT_S_MAX: Final = 400 * 24 * 3600

# Pending transfers whose timeout passed are released in groups of at most this many per batch.
EXPIRY_PER_BATCH_MAX: Final = 1000
# A Ledger looks for timed-out reservations at most this often; releasing one waits at most this long.
EXPIRY_CHECK_INTERVAL_S: Final = 0.05

# user_data fields (as in TigerBeetle) are opaque references for the caller.
USER_DATA_64_MAX: Final = 2**63 - 1
USER_DATA_32_MAX: Final = 2**31 - 1

# Small positive integers: asset and code columns are PostgreSQL smallint.
CODE_MAX: Final = 2**15 - 1

# Pagination of an account's transfers.
PAGE_TRANSFERS_MAX: Final = 1000

# A batch that loses a race (unique id inserted concurrently, deadlock) is retried this many times.
TRANSACTION_RETRIES_MAX: Final = 5
