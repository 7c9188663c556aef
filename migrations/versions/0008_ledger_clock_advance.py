"""The ledger clock may be moved forward (never back): simulations and the demo show a month passing.

Revision ID: 0008_ledger_clock_advance
Revises: 0007_settlement
Create Date: 2026-11-29
"""

from alembic import op

revision = "0008_ledger_clock_advance"
down_revision = "0007_settlement"
branch_labels = None
depends_on = None

UPGRADE = r"""
-- Moves the ledger clock forward to `target` nanoseconds (a no-op if it is already there or later), so the
-- next reserved timestamp is after it. Timestamps stay unique and increasing; nothing already stamped
-- changes. Only the schema owner may call it (not granted to the application role): a production ledger
-- follows the wall clock, and this exists for simulations and the demo.
CREATE FUNCTION ledger_clock_advance(target bigint) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    current_ns bigint;
BEGIN
    PERFORM pg_advisory_lock(7325064101);
    BEGIN
        SELECT last_value INTO current_ns FROM ledger_clock;
        IF target > current_ns THEN
            PERFORM setval('ledger_clock', target);
            current_ns := target;
        END IF;
    EXCEPTION WHEN OTHERS OR query_canceled THEN
        PERFORM pg_advisory_unlock(7325064101);
        RAISE;
    END;
    PERFORM pg_advisory_unlock(7325064101);
    RETURN current_ns;
END $$;
REVOKE ALL ON FUNCTION ledger_clock_advance(bigint) FROM PUBLIC;
"""

DOWNGRADE = r"""
DROP FUNCTION ledger_clock_advance(bigint);
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
