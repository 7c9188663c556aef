"""An account's identity is guarded AFTER the update, so that a counter update does not lock its row twice.

0001 guarded it with `BEFORE UPDATE OF <identity columns> OR DELETE ... FOR EACH ROW`, expecting a counter
update to pay nothing, since the SET list names no identity column. It paid anyway: whenever a table has
any BEFORE UPDATE row trigger, PostgreSQL locks each row to be updated, and writes a WAL record for that
lock, before it looks at the trigger's column list. `ledger_apply_deltas` updates hundreds of accounts a
batch, so each batch wrote one Heap LOCK record per account beside its HOT update (measured with
pg_walinspect: 683 of each for a batch of 1000 transfers).

The guard is now two triggers that refuse the same things with the same errors:
- `accounts_guard_delete`, BEFORE DELETE (row deletes take their lock anyway);
- `accounts_guard`, AFTER UPDATE OF the identity columns, with a WHEN condition. An exception raised there
  undoes the statement just as surely, and a counter update neither fires it nor locks anything for it
  (as `accounts_limits_immutable` does since 0010).

Revision ID: 0011_accounts_guard_after
Revises: 0010_ledger_hot_path
Create Date: 2026-11-29
"""

from alembic import op

revision = "0011_accounts_guard_after"
down_revision = "0010_ledger_hot_path"
branch_labels = None
depends_on = None

# The columns that make an account what it is (0001's ledger_guard_account compares the same ones).
_COLUMNS = ("id", "asset", "code", "user_data_128", "user_data_64", "user_data_32", '"timestamp"')
_IDENTITY = ", ".join(_COLUMNS)
_NEW_IDENTITY = ", ".join(f"NEW.{column}" for column in _COLUMNS)
_OLD_IDENTITY = ", ".join(f"OLD.{column}" for column in _COLUMNS)

UPGRADE = f"""
DROP TRIGGER accounts_guard ON accounts;
CREATE TRIGGER accounts_guard_delete BEFORE DELETE ON accounts
    FOR EACH ROW EXECUTE FUNCTION ledger_guard_account();
CREATE TRIGGER accounts_guard AFTER UPDATE OF {_IDENTITY} ON accounts
    FOR EACH ROW WHEN (({_NEW_IDENTITY}) IS DISTINCT FROM ({_OLD_IDENTITY}))
    EXECUTE FUNCTION ledger_guard_account();
ALTER TABLE accounts ENABLE ALWAYS TRIGGER accounts_guard_delete;
ALTER TABLE accounts ENABLE ALWAYS TRIGGER accounts_guard;
"""

DOWNGRADE = f"""
DROP TRIGGER accounts_guard ON accounts;
DROP TRIGGER accounts_guard_delete ON accounts;
CREATE TRIGGER accounts_guard BEFORE UPDATE OF {_IDENTITY} OR DELETE ON accounts
    FOR EACH ROW EXECUTE FUNCTION ledger_guard_account();
ALTER TABLE accounts ENABLE ALWAYS TRIGGER accounts_guard;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
