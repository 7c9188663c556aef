"""The ledger clock. Ledger timestamps are integer nanoseconds since the Unix epoch (UTC), reserved from the
database (`ledger_clock_reserve`) after a batch holds its account locks, so they are unique and, for any
one account, strictly increasing in commit order. Business dates are days in Kazakhstan's time zone."""

import datetime as dt
from zoneinfo import ZoneInfo

# Kazakhstan has one time zone (UTC+5) since 1 March 2024; acts, periods and effective dates follow it.
BUSINESS_TIMEZONE = ZoneInfo("Asia/Almaty")

NANOSECONDS_PER_SECOND = 1_000_000_000


def timestamp_to_datetime(timestamp_ns: int) -> dt.datetime:
    """A ledger timestamp as an aware UTC datetime (microsecond precision)."""
    seconds, nanoseconds = divmod(timestamp_ns, NANOSECONDS_PER_SECOND)
    moment = dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
    return moment + dt.timedelta(microseconds=nanoseconds // 1000)


def datetime_to_timestamp(moment: dt.datetime) -> int:
    """An aware datetime as ledger nanoseconds; naive datetimes are a programmer error."""
    assert moment.tzinfo is not None, "naive datetime: the ledger only speaks aware UTC"
    delta = moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * NANOSECONDS_PER_SECOND + delta.microseconds * 1000


def business_date(timestamp_ns: int) -> dt.date:
    """The business day (Asia/Almaty) a ledger timestamp falls on: the default effective date."""
    return timestamp_to_datetime(timestamp_ns).astimezone(BUSINESS_TIMEZONE).date()
