"""A programme's positions: where every tiyn funded into it is, as of the end of any business day, all
computed from the ledger (transfers by their code, balances by account) and reconciled to the tiyn.

The programme's accounts: its budget account (treasury budget, or the National Bank's issuance account
for digital tenge), its *pool* (the programme fund and every regional sub-fund), its vouchers' accounts,
and its providers' receivables (one per provider enrolled in it, `programme_providers`). Every figure is
posted value (pending reservations are shown apart) counting transfers stamped before the end of the
day in Kazakhstan; with no date, everything up to now.

Flows, summed from transfers by their code:

- funded:   FUND into the programme fund (budget → fund).
- allocated: ALLOCATE (fund → sub-funds) less DEALLOCATE (sub-funds → fund): held by regions, net.
- issued:   ISSUE out of the pool into vouchers, posted (an offer counts once the citizen accepts it).
- offered:  ISSUE still pending: value reserved by offers awaiting consent (still in the pool).
- redeemed: REDEEM from vouchers to receivables, less REVERSAL back to vouchers.
- reserved: REDEEM still pending (a pharmacy's reservation; still in the voucher).
- expired:  RETURN from vouchers to the pool: what expired, revoked (or partly spent) vouchers gave back.
- returned: CLOSE_RETURN from the pool to the budget account when the programme closed.
- settled:  PAYOUT_CLEARING out of the programme's receivables (acts approved for payment).
- paid:     PAYOUT_BANK out of the clearing accounts those payouts went to, less PAYOUT_BANK back into
            them (payments the bank returned, see treasury.settlement.returns).

Balances, read from the accounts:

- unissued:    the pool's balance: never issued, or given back by expiry and not yet returned to the budget.
- outstanding: the vouchers' balance: issued and still spendable (or held by a suspension, or reserved).
- receivable:  the receivables' balance: redeemed and not yet settled.

Reconciliation (each must hold to the tiyn; a difference means value moved by a transfer the treasury
does not know about):

    funded = unissued + outstanding + redeemed + returned       where every funded tiyn is now
    issued = outstanding + redeemed + expired                   where every issued tiyn is now
    redeemed = receivable + settled                             what providers are owed, or were paid
"""

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any, Final

import psycopg

from ledger.clock import BUSINESS_TIMEZONE, datetime_to_timestamp
from ledger.transfer_codes import TransferCode
from treasury.errors import RefusalKind, Refused
from treasury.programmes import Programme, find_programme

C = TransferCode
FIGURES: Final = ("funded", "allocated", "issued", "offered", "redeemed", "reserved", "expired", "returned",
                  "outstanding", "unissued", "receivable", "settled", "paid")  # fmt: skip
_FOREVER: Final = 2**63 - 1
_POSTED: Final = "t.flags & 10 = 0"  # neither pending (2) nor a void (8)


@dataclass(frozen=True, slots=True)
class Check:
    """One reconciliation equation: `left` (a flow) against `right` (where that value is now)."""

    name: str
    left: int
    right: int

    @property
    def difference(self) -> int:
        return self.left - self.right

    @property
    def ok(self) -> bool:
        return self.left == self.right


@dataclass(frozen=True, slots=True)
class Positions:
    programme_id: uuid.UUID
    code: str
    asset: str
    as_of: dt.date | None  # end of this business day; None: now
    figures: dict[str, int]
    checks: tuple[Check, ...]

    @property
    def reconciled(self) -> bool:
        return all(check.ok for check in self.checks)


def programme_positions(
    connection: psycopg.Connection[Any], programme_id: uuid.UUID, as_of: dt.date | None = None
) -> Positions:
    """The positions of a programme at the end of `as_of` (Asia/Almaty), or now."""
    programme = find_programme(connection, programme_id)
    if programme is None:
        raise Refused("programme_not_found", str(programme_id), RefusalKind.NOT_FOUND)
    cut = _FOREVER if as_of is None else _end_of_day(as_of)
    pool = _ids(connection, "SELECT account_id FROM voucher_funds WHERE programme_id = %s", programme_id)
    receivables = _ids(
        connection,
        "SELECT receivable_account_id FROM programme_providers WHERE programme_id = %s",
        programme_id,
    )
    out_of_pool = _posted_by_code(connection, "debit", pool, cut)
    into_pool = _posted_by_code(connection, "credit", pool, cut)
    out_of_receivables = _posted_by_code(connection, "debit", receivables, cut)
    into_receivables = _posted_by_code(connection, "credit", receivables, cut)
    figures = {
        "funded": into_pool.get(C.FUND, 0),
        "allocated": out_of_pool.get(C.ALLOCATE, 0) - out_of_pool.get(C.DEALLOCATE, 0),
        "issued": out_of_pool.get(C.ISSUE, 0),
        "offered": _pending(connection, "debit", pool, C.ISSUE, cut),
        "redeemed": into_receivables.get(C.REDEEM, 0) - out_of_receivables.get(C.REVERSAL, 0),
        "reserved": _pending(connection, "credit", receivables, C.REDEEM, cut),
        "expired": into_pool.get(C.RETURN, 0),
        "returned": out_of_pool.get(C.CLOSE_RETURN, 0),
        "outstanding": _vouchers_balance(connection, programme_id, cut),
        "unissued": _balance(connection, pool, cut),
        "receivable": _balance(connection, receivables, cut),
        "settled": out_of_receivables.get(C.PAYOUT_CLEARING, 0),
        "paid": _paid(connection, programme, receivables, cut),
    }
    f = figures
    checks = (
        Check("funded = unissued + outstanding + redeemed + returned", f["funded"],
              f["unissued"] + f["outstanding"] + f["redeemed"] + f["returned"]),
        Check("issued = outstanding + redeemed + expired", f["issued"],
              f["outstanding"] + f["redeemed"] + f["expired"]),
        Check("redeemed = receivable + settled", f["redeemed"], f["receivable"] + f["settled"]),
    )  # fmt: skip
    return Positions(programme.id, programme.draft.code, programme.draft.asset.name, as_of, figures, checks)


def positions_document(positions: Positions) -> dict[str, Any]:
    """The JSON form (integers of tiyn; the date as YYYY-MM-DD, or null for now)."""
    return {
        "programme": positions.code,
        "programme_id": str(positions.programme_id),
        "asset": positions.asset,
        "as_of": positions.as_of.isoformat() if positions.as_of else None,
        "figures": dict(positions.figures),
        "checks": [
            {"name": c.name, "left": c.left, "right": c.right, "difference": c.difference, "ok": c.ok}
            for c in positions.checks
        ],
        "reconciled": positions.reconciled,
    }


def positions_csv(positions: Positions) -> str:
    """CSV: one line per figure, then one per check with its difference (0 when it reconciles)."""
    as_of = positions.as_of.isoformat() if positions.as_of else ""
    lines = ["programme,as_of,figure,tiyn"]
    lines += [f"{positions.code},{as_of},{name},{positions.figures[name]}" for name in FIGURES]
    lines += [f'{positions.code},{as_of},"check: {c.name}",{c.difference}' for c in positions.checks]
    return "\n".join(lines) + "\n"


def _end_of_day(day: dt.date) -> int:
    """The first ledger nanosecond of the next business day."""
    return datetime_to_timestamp(
        dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), BUSINESS_TIMEZONE)
    )


def _posted_by_code(
    connection: psycopg.Connection[Any], side: str, accounts: list[uuid.UUID], cut: int
) -> dict[int, int]:
    assert side in ("debit", "credit")
    rows = connection.execute(
        f"""SELECT t.code, sum(t.amount) FROM transfers t
             WHERE t.{side}_account_id = ANY(%s) AND t."timestamp" < %s AND {_POSTED} GROUP BY t.code""",
        (accounts, cut),
    ).fetchall()
    return {row[0]: int(row[1]) for row in rows}


def _pending(
    connection: psycopg.Connection[Any], side: str, accounts: list[uuid.UUID], code: int, cut: int
) -> int:
    """Reservations made before the cut and not posted, voided or timed out before it."""
    assert side in ("debit", "credit")
    row = connection.execute(
        f"""SELECT coalesce(sum(t.amount), 0) FROM transfers t
             WHERE t.{side}_account_id = ANY(%s) AND t.code = %s AND t.flags & 2 <> 0 AND t."timestamp" < %s
               AND NOT EXISTS (SELECT 1 FROM transfers r WHERE r.pending_id = t.id AND r."timestamp" < %s)""",
        (accounts, code, cut, cut),
    ).fetchone()
    return int(row[0]) if row else 0


def _balance(connection: psycopg.Connection[Any], accounts: list[uuid.UUID], cut: int) -> int:
    """Posted credits less posted debits of the accounts: their counters now, their transfers as of a day."""
    if cut == _FOREVER:
        row = connection.execute(
            "SELECT coalesce(sum(credits_posted - debits_posted), 0) FROM accounts WHERE id = ANY(%s)",
            (accounts,),
        ).fetchone()
        return int(row[0]) if row else 0
    into = _posted_by_code(connection, "credit", accounts, cut)
    out = _posted_by_code(connection, "debit", accounts, cut)
    return sum(into.values()) - sum(out.values())


def _vouchers_balance(connection: psycopg.Connection[Any], programme_id: uuid.UUID, cut: int) -> int:
    if cut == _FOREVER:
        query = """SELECT coalesce(sum(a.credits_posted - a.debits_posted), 0)
                     FROM vouchers v JOIN accounts a ON a.id = v.id WHERE v.programme_id = %s"""
        row = connection.execute(query, (programme_id,)).fetchone()
        return int(row[0]) if row else 0
    row = connection.execute(
        f"""SELECT coalesce((SELECT sum(t.amount) FROM vouchers v
                              JOIN transfers t ON t.credit_account_id = v.id
                             WHERE v.programme_id = %(p)s AND t."timestamp" < %(cut)s AND {_POSTED}), 0)
                 - coalesce((SELECT sum(t.amount) FROM vouchers v
                              JOIN transfers t ON t.debit_account_id = v.id
                             WHERE v.programme_id = %(p)s AND t."timestamp" < %(cut)s AND {_POSTED}), 0)""",
        {"p": programme_id, "cut": cut},
    ).fetchone()
    return int(row[0]) if row else 0


def _paid(
    connection: psycopg.Connection[Any], programme: Programme, receivables: list[uuid.UUID], cut: int
) -> int:
    """Sent to providers' banks (PAYOUT_BANK out of the clearing accounts this programme's receivables paid
    into), less what the banks sent back (PAYOUT_BANK into them: returned payments)."""
    row = connection.execute(
        f"""WITH clearing AS (SELECT DISTINCT c.credit_account_id AS id FROM transfers c
                               WHERE c.debit_account_id = ANY(%(r)s) AND c.code = %(clearing)s)
            SELECT coalesce(sum(CASE WHEN t.debit_account_id IN (SELECT id FROM clearing) THEN t.amount
                                     ELSE -t.amount END), 0)
              FROM transfers t
             WHERE (t.debit_account_id IN (SELECT id FROM clearing)
                    OR t.credit_account_id IN (SELECT id FROM clearing))
               AND t.code = %(bank)s AND t."timestamp" < %(cut)s AND {_POSTED}""",
        {"r": receivables, "clearing": int(C.PAYOUT_CLEARING), "bank": int(C.PAYOUT_BANK), "cut": cut},
    ).fetchone()  # fmt: skip
    return int(row[0]) if row else 0


def _ids(connection: psycopg.Connection[Any], query: str, programme_id: uuid.UUID) -> list[uuid.UUID]:
    return [row[0] for row in connection.execute(query, (programme_id,))]
