"""Ledger core: accounts, append-only transfers, failed ids, pending timeouts, the ledger clock.

Revision ID: 0001_ledger_core
Revises:
Create Date: 2026-11-23
"""

from alembic import op

revision = "0001_ledger_core"
down_revision = None
branch_labels = None
depends_on = None

APPLICATION_ROLE = "amiyan_app"

UPGRADE = r"""
CREATE TABLE accounts (
    id uuid NOT NULL,
    asset smallint NOT NULL,
    code smallint NOT NULL,
    flags integer NOT NULL,
    user_data_128 uuid NOT NULL,
    user_data_64 bigint NOT NULL,
    user_data_32 integer NOT NULL,
    debits_pending bigint NOT NULL,
    debits_posted bigint NOT NULL,
    credits_pending bigint NOT NULL,
    credits_posted bigint NOT NULL,
    "timestamp" bigint NOT NULL,
    CONSTRAINT pk_accounts PRIMARY KEY (id),
    CONSTRAINT uq_accounts_timestamp UNIQUE ("timestamp"),
    CONSTRAINT ck_accounts_asset_positive CHECK (asset > 0),
    CONSTRAINT ck_accounts_code_positive CHECK (code > 0),
    CONSTRAINT ck_accounts_counters_not_negative CHECK (
        debits_pending >= 0 AND debits_posted >= 0 AND credits_pending >= 0 AND credits_posted >= 0),
    CONSTRAINT ck_accounts_debits_must_not_exceed_credits CHECK (
        flags & 2 = 0 OR debits_pending + debits_posted <= credits_posted),
    CONSTRAINT ck_accounts_credits_must_not_exceed_debits CHECK (
        flags & 4 = 0 OR credits_pending + credits_posted <= debits_posted)
) WITH (fillfactor = 70);  -- room on each page for HOT updates of the counters

CREATE TABLE transfers (
    id uuid NOT NULL,
    debit_account_id uuid NOT NULL,
    credit_account_id uuid NOT NULL,
    amount bigint NOT NULL,
    asset smallint NOT NULL,
    code smallint NOT NULL,
    flags integer NOT NULL,
    pending_id uuid,
    timeout_s integer NOT NULL,
    user_data_128 uuid NOT NULL,
    user_data_64 bigint NOT NULL,
    user_data_32 integer NOT NULL,
    effective_date date NOT NULL,
    "timestamp" bigint NOT NULL,
    CONSTRAINT pk_transfers PRIMARY KEY (id),
    CONSTRAINT uq_transfers_timestamp UNIQUE ("timestamp"),
    CONSTRAINT ck_transfers_amount_positive CHECK (amount > 0),
    CONSTRAINT ck_transfers_accounts_different CHECK (debit_account_id <> credit_account_id)
);
CREATE INDEX ix_transfers_debit_account_id_timestamp ON transfers (debit_account_id, "timestamp");
CREATE INDEX ix_transfers_credit_account_id_timestamp ON transfers (credit_account_id, "timestamp");
-- At most one post, void or expiry per pending transfer: a double post is impossible at the database.
CREATE UNIQUE INDEX uq_transfers_pending_id ON transfers (pending_id) WHERE pending_id IS NOT NULL;

CREATE TABLE transfer_failures (
    id uuid NOT NULL,
    result smallint NOT NULL,
    "timestamp" bigint NOT NULL,
    CONSTRAINT pk_transfer_failures PRIMARY KEY (id)
);

-- Mutable work queue (not history): pending transfers with a timeout, until they are resolved or released.
CREATE TABLE pending_timeouts (
    transfer_id uuid NOT NULL,
    expires_at bigint NOT NULL,
    CONSTRAINT pk_pending_timeouts PRIMARY KEY (transfer_id)
);
CREATE INDEX ix_pending_timeouts_expires_at ON pending_timeouts (expires_at);

-- History is append-only. ENABLE ALWAYS: the triggers fire even under session_replication_role = replica.
CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation', CONSTRAINT = TG_TABLE_NAME || '_append_only';
END $$;

CREATE TRIGGER transfers_append_only BEFORE UPDATE OR DELETE ON transfers
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER transfers_no_truncate BEFORE TRUNCATE ON transfers
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
ALTER TABLE transfers ENABLE ALWAYS TRIGGER transfers_append_only;
ALTER TABLE transfers ENABLE ALWAYS TRIGGER transfers_no_truncate;
CREATE TRIGGER transfer_failures_append_only BEFORE UPDATE OR DELETE ON transfer_failures
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER transfer_failures_no_truncate BEFORE TRUNCATE ON transfer_failures
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
ALTER TABLE transfer_failures ENABLE ALWAYS TRIGGER transfer_failures_append_only;
ALTER TABLE transfer_failures ENABLE ALWAYS TRIGGER transfer_failures_no_truncate;

-- Accounts are never deleted, and only their counters and flags ever change.
CREATE FUNCTION ledger_guard_account() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' THEN
        RAISE EXCEPTION 'accounts are never removed: % refused', TG_OP
            USING ERRCODE = 'restrict_violation', CONSTRAINT = 'accounts_permanent';
    END IF;
    IF (NEW.id, NEW.asset, NEW.code, NEW.user_data_128, NEW.user_data_64, NEW.user_data_32, NEW."timestamp")
       IS DISTINCT FROM
       (OLD.id, OLD.asset, OLD.code, OLD.user_data_128, OLD.user_data_64, OLD.user_data_32, OLD."timestamp") THEN
        RAISE EXCEPTION 'account % may only change its counters and flags', OLD.id
            USING ERRCODE = 'restrict_violation', CONSTRAINT = 'accounts_identity_immutable';
    END IF;
    RETURN NEW;
END $$;
-- Column-scoped: the trigger fires only when an identity column is in the SET list, so the hot path's
-- counter updates pay nothing for it.
CREATE TRIGGER accounts_guard
    BEFORE UPDATE OF id, asset, code, user_data_128, user_data_64, user_data_32, "timestamp" OR DELETE ON accounts
    FOR EACH ROW EXECUTE FUNCTION ledger_guard_account();
CREATE TRIGGER accounts_no_truncate BEFORE TRUNCATE ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
ALTER TABLE accounts ENABLE ALWAYS TRIGGER accounts_guard;
ALTER TABLE accounts ENABLE ALWAYS TRIGGER accounts_no_truncate;

-- The ledger clock: nanoseconds since the epoch, unique and increasing. A batch reserves its block after
-- it holds its account locks, so an account's transfers are stamped in commit order. The advisory lock
-- is held for microseconds around the sequence, never across a commit.
CREATE SEQUENCE ledger_clock AS bigint MINVALUE 1;
-- SECURITY DEFINER: the application may reserve timestamps but never set the clock itself.
CREATE FUNCTION ledger_clock_reserve(n integer) RETURNS bigint LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    now_ns bigint;
    first_ns bigint;
BEGIN
    IF n < 1 THEN
        RAISE EXCEPTION 'ledger_clock_reserve needs n >= 1, got %', n USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM pg_advisory_lock(7325064101);
    BEGIN
        now_ns := (extract(epoch FROM clock_timestamp()) * 1000000)::bigint * 1000;
        first_ns := greatest(nextval('ledger_clock'), now_ns);
        PERFORM setval('ledger_clock', first_ns + n - 1);
    EXCEPTION WHEN OTHERS OR query_canceled THEN
        PERFORM pg_advisory_unlock(7325064101);
        RAISE;
    END;
    PERFORM pg_advisory_unlock(7325064101);
    RETURN first_ns;
END $$;

-- Applies a batch's per-account changes as deltas, in one UPDATE that walks the accounts in id order
-- (a nested loop over the sorted deltas; hash and merge joins are off inside this function), so its row
-- locks are taken in id order and concurrent batches do not deadlock. An account whose closed flag is no
-- longer what the batch read is skipped by the WHERE clause, and the row count then refuses the batch
-- (40001: the caller retries). A batch whose debits and credits differ is refused outright, and so is
-- one that moves an account in an asset other than its own (`assets`: the asset of the rows touching each
-- account; the refusing function is only called on a mismatch, so the hot path pays nothing for it).
CREATE FUNCTION ledger_refuse_other_asset(account uuid, account_asset smallint, transfer_asset smallint)
    RETURNS integer LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'account % holds asset % but a transfer on it is in asset %', account, account_asset,
        transfer_asset USING ERRCODE = 'check_violation', CONSTRAINT = 'transfers_same_asset';
END $$;

CREATE FUNCTION ledger_apply_deltas(
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
             ORDER BY u.id) n
     WHERE a.id = n.id AND a.flags & 8 = n.closed;
    GET DIAGNOSTICS updated = ROW_COUNT;
    IF updated <> cardinality(ids) THEN
        RAISE EXCEPTION '% account(s) were closed, reopened or missing while the batch was decided',
            cardinality(ids) - updated
            USING ERRCODE = 'serialization_failure';
    END IF;
END $$;

-- Each account's counters recomputed from its transfers alone; the invariant is that they equal the stored
-- counters. A post, void or expiry releases the whole pending amount it resolves.
CREATE VIEW account_transfer_sums AS
WITH movements AS (
    SELECT t.debit_account_id AS account_id,
           CASE WHEN t.flags & 2 <> 0 THEN t.amount ELSE 0 END
             - CASE WHEN t.pending_id IS NOT NULL THEN p.amount ELSE 0 END AS debits_pending,
           CASE WHEN t.flags & (2 | 8) = 0 THEN t.amount ELSE 0 END AS debits_posted,
           0::bigint AS credits_pending, 0::bigint AS credits_posted
      FROM transfers t LEFT JOIN transfers p ON p.id = t.pending_id
    UNION ALL
    SELECT t.credit_account_id,
           0, 0,
           CASE WHEN t.flags & 2 <> 0 THEN t.amount ELSE 0 END
             - CASE WHEN t.pending_id IS NOT NULL THEN p.amount ELSE 0 END,
           CASE WHEN t.flags & (2 | 8) = 0 THEN t.amount ELSE 0 END
      FROM transfers t LEFT JOIN transfers p ON p.id = t.pending_id
)
SELECT a.id AS account_id,
       coalesce(sum(m.debits_pending), 0)::bigint AS debits_pending,
       coalesce(sum(m.debits_posted), 0)::bigint AS debits_posted,
       coalesce(sum(m.credits_pending), 0)::bigint AS credits_pending,
       coalesce(sum(m.credits_posted), 0)::bigint AS credits_posted
  FROM accounts a LEFT JOIN movements m ON m.account_id = a.id
 GROUP BY a.id;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'amiyan_app') THEN
        CREATE ROLE amiyan_app NOLOGIN;
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'cannot create role amiyan_app here; grant it by hand (see ARCHITECTURE.md)';
END $$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'amiyan_app') THEN
        GRANT SELECT, INSERT ON accounts TO amiyan_app;
        -- Only the counters and flags can ever change, even for the application.
        GRANT UPDATE (debits_pending, debits_posted, credits_pending, credits_posted, flags) ON accounts TO amiyan_app;
        GRANT SELECT, INSERT ON transfers, transfer_failures TO amiyan_app;
        GRANT SELECT, INSERT, UPDATE, DELETE ON pending_timeouts TO amiyan_app;
        GRANT SELECT ON account_transfer_sums TO amiyan_app;
    END IF;
END $$;
"""

DOWNGRADE = r"""
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'amiyan_app') THEN
        REVOKE ALL ON accounts, transfers, transfer_failures, pending_timeouts, account_transfer_sums
            FROM amiyan_app;
    END IF;
END $$;
DROP VIEW account_transfer_sums;
DROP FUNCTION ledger_apply_deltas(uuid[], bigint[], bigint[], bigint[], bigint[], integer[], integer[], integer[], smallint[]);
DROP FUNCTION ledger_refuse_other_asset(uuid, smallint, smallint);
DROP FUNCTION ledger_clock_reserve(integer);
DROP SEQUENCE ledger_clock;
DROP TABLE pending_timeouts;
DROP TABLE transfer_failures;
DROP TABLE transfers;
DROP TABLE accounts;
DROP FUNCTION ledger_guard_account();
DROP FUNCTION ledger_refuse_change();
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
