"""Ledger hot path: `ledger_apply_deltas` also refuses a batch that would push an account's pending plus
posted debits (or credits) past 2^63 - 1, and an account's balance-limit flags can never change.

Both let a `Ledger` remember accounts instead of reading them for every batch (ledger/known_accounts.py):
a batch decided on a remembered account's identity alone is refused here, and retried with fresh reads,
if the account was closed meanwhile or its counters would overflow; and an account remembered as having
no limit (or a limit) keeps it.

Revision ID: 0010_ledger_hot_path
Revises: 0008_ledger_clock_advance
Create Date: 2026-11-30
"""

from alembic import op

revision = "0010_ledger_hot_path"
down_revision = "0008_ledger_clock_advance"
branch_labels = None
depends_on = None

# The body of ledger_apply_deltas, with `{overflow_guard}` where this revision adds its condition.
APPLY_DELTAS = r"""
CREATE OR REPLACE FUNCTION ledger_apply_deltas(
    ids uuid[], debits_pending_delta bigint[], debits_posted_delta bigint[],
    credits_pending_delta bigint[], credits_posted_delta bigint[],
    closed_expected integer[], flags_set integer[], flags_clear integer[], assets smallint[]
) RETURNS void LANGUAGE plpgsql
    SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE
    moved record;
    updated integer;
BEGIN
    SELECT coalesce(sum(d), 0) AS dp, coalesce(sum(dpo), 0) AS dpo, coalesce(sum(c), 0) AS cp,
           coalesce(sum(cpo), 0) AS cpo
      INTO moved
      FROM unnest(debits_pending_delta, debits_posted_delta, credits_pending_delta, credits_posted_delta)
           AS n(d, dpo, c, cpo);
    IF moved.dpo <> moved.cpo OR moved.dp <> moved.cp THEN
        RAISE EXCEPTION 'batch does not balance: debits % posted / % pending, credits % posted / % pending',
            moved.dpo, moved.dp, moved.cpo, moved.cp
            USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_zero_sum';
    END IF;
    UPDATE accounts a
       SET debits_pending = a.debits_pending + n.dp, debits_posted = a.debits_posted + n.dpo,
           credits_pending = a.credits_pending + n.cp, credits_posted = a.credits_posted + n.cpo,
           flags = CASE WHEN a.asset <> n.asset THEN ledger_refuse_other_asset(a.id, a.asset, n.asset)
                        ELSE (a.flags | n.fset) & ~n.fclear END
      FROM (SELECT * FROM unnest(ids, debits_pending_delta, debits_posted_delta, credits_pending_delta,
                                 credits_posted_delta, closed_expected, flags_set, flags_clear, assets)
                       AS u(id, dp, dpo, cp, cpo, closed, fset, fclear, asset)
             ORDER BY {lock_order}) n
     WHERE a.id = n.id AND a.flags & 8 = n.closed{overflow_guard};
    GET DIAGNOSTICS updated = ROW_COUNT;
    IF updated <> cardinality(ids) THEN
        RAISE EXCEPTION '% account(s) were {skipped} while the batch was decided',
            cardinality(ids) - updated
            USING ERRCODE = 'serialization_failure';
    END IF;
END $$;
"""

# Written so that it cannot overflow itself: each counter is >= 0, so max - posted - pending >= -max.
OVERFLOW_GUARD = """
       -- pending + posted may not pass 2^63 - 1 (the ledger's overflows_debits / overflows_credits)
       AND n.dp + n.dpo <= (9223372036854775807 - a.debits_posted) - a.debits_pending
       AND n.cp + n.cpo <= (9223372036854775807 - a.credits_posted) - a.credits_pending"""

# Rows are locked in the order of a hash of the id rather than the id itself: any one total order keeps
# concurrent batches from deadlocking, and ids are time-ordered, so id order is page order. Updating the
# rows of one page back to back keeps that page pinned, and PostgreSQL then cannot prune it to make room
# for the new versions (measured: 60% of updates HOT in id order, 87-100% in hash order).
UPGRADE = (
    APPLY_DELTAS.replace("{overflow_guard}", OVERFLOW_GUARD)
    .replace("{skipped}", "closed, reopened or missing, or would overflow,")
    .replace("{lock_order}", "uuid_hash(u.id), u.id")
    + r"""
-- An account's balance-limit flags (2: debits must not exceed credits, 4: credits must not exceed debits)
-- are part of its identity. AFTER, with a WHEN condition: evaluated without calling the function and
-- without locking the row first (a BEFORE row trigger would), the hot path's counter updates pay ~0.1 µs
-- a row for it (measured: BEFORE costs 0.4-0.7 µs).
CREATE FUNCTION ledger_refuse_limit_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'account %: its balance-limit flags never change (% -> %)', OLD.id, OLD.flags, NEW.flags
        USING ERRCODE = 'restrict_violation', CONSTRAINT = 'accounts_limits_immutable';
END $$;
CREATE TRIGGER accounts_limits_immutable AFTER UPDATE OF flags ON accounts
    FOR EACH ROW WHEN ((OLD.flags # NEW.flags) & 6 <> 0) EXECUTE FUNCTION ledger_refuse_limit_change();
ALTER TABLE accounts ENABLE ALWAYS TRIGGER accounts_limits_immutable;
"""
)

DOWNGRADE = r"""
DROP TRIGGER accounts_limits_immutable ON accounts;
DROP FUNCTION ledger_refuse_limit_change();
""" + APPLY_DELTAS.replace("{overflow_guard}", "").replace(
    "{skipped}", "closed, reopened or missing"
).replace("{lock_order}", "u.id")


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
