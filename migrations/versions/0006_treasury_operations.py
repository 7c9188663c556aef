"""Treasury operations: funding orders with maker-checker approval under the programme's ceiling, regional
sub-funds and their allocations, bulk issuance jobs with their rejection reports.

Revision ID: 0006_treasury_operations
Revises: 0005_treasury_programmes
Create Date: 2026-11-30
"""

from alembic import op

revision = "0006_treasury_operations"
down_revision = "0005_treasury_programmes"
branch_labels = None
depends_on = None

UPGRADE = r"""
-- How much of a programme's ceiling has been funded. Executing a funding order raises funded_tiyn with a
-- conditional UPDATE; the CHECK is the last word: no transaction can commit funding past the ceiling.
-- The ceiling is copied from the programme when the row is made and never changes.
CREATE TABLE programme_funding (
    programme_id uuid NOT NULL,
    ceiling_tiyn bigint NOT NULL,
    funded_tiyn bigint NOT NULL,
    CONSTRAINT pk_programme_funding PRIMARY KEY (programme_id),
    CONSTRAINT fk_programme_funding_programme_id_programmes FOREIGN KEY (programme_id)
        REFERENCES programmes (id),
    CONSTRAINT ck_programme_funding_within_ceiling CHECK (funded_tiyn >= 0 AND funded_tiyn <= ceiling_tiyn)
);

CREATE FUNCTION treasury_guard_programme_funding() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' THEN
        RAISE EXCEPTION 'funding counters are never removed: % refused', TG_OP
            USING ERRCODE = 'restrict_violation', CONSTRAINT = 'programme_funding_permanent';
    END IF;
    IF NEW.programme_id <> OLD.programme_id OR NEW.ceiling_tiyn <> OLD.ceiling_tiyn
       OR NEW.funded_tiyn < OLD.funded_tiyn THEN
        RAISE EXCEPTION 'programme %: funding only grows, and the ceiling never changes', OLD.programme_id
            USING ERRCODE = 'restrict_violation', CONSTRAINT = 'programme_funding_only_grows';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER programme_funding_guard BEFORE UPDATE OR DELETE ON programme_funding
    FOR EACH ROW EXECUTE FUNCTION treasury_guard_programme_funding();
ALTER TABLE programme_funding ENABLE ALWAYS TRIGGER programme_funding_guard;

-- A funding order: budget (or the National Bank's issuance account) → programme fund. state: 1 awaiting
-- approval, 2 executed, 3 rejected. An order above the threshold it was made under executes only with the
-- approval of another officer: the maker can never be the checker (compared without case or edge spaces).
CREATE TABLE funding_orders (
    id uuid NOT NULL,
    programme_id uuid NOT NULL,
    amount_tiyn bigint NOT NULL,
    approval_threshold_tiyn bigint NOT NULL,
    state smallint NOT NULL,
    created_by text NOT NULL,
    created_at bigint NOT NULL,
    approved_by text,
    rejected_by text,
    rejection_reason text,
    decided_at bigint,
    transfer_id uuid,
    CONSTRAINT pk_funding_orders PRIMARY KEY (id),
    CONSTRAINT fk_funding_orders_programme_id_programmes FOREIGN KEY (programme_id) REFERENCES programmes (id),
    CONSTRAINT ck_funding_orders_amount_positive CHECK (amount_tiyn > 0),
    CONSTRAINT ck_funding_orders_state_known CHECK (state BETWEEN 1 AND 3),
    CONSTRAINT ck_funding_orders_four_eyes CHECK (lower(btrim(approved_by)) <> lower(btrim(created_by))),
    CONSTRAINT ck_funding_orders_approval_above_threshold CHECK (
        state <> 2 OR amount_tiyn <= approval_threshold_tiyn OR approved_by IS NOT NULL),
    CONSTRAINT ck_funding_orders_executed_has_transfer CHECK ((state = 2) = (transfer_id IS NOT NULL)),
    CONSTRAINT ck_funding_orders_rejected_has_reason CHECK (
        (state = 3) = (rejected_by IS NOT NULL AND rejection_reason IS NOT NULL)),
    CONSTRAINT ck_funding_orders_decided_has_time CHECK ((state = 1) = (decided_at IS NULL))
);
CREATE INDEX ix_funding_orders_programme_id_created_at ON funding_orders (programme_id, created_at);

-- An order is decided once: awaiting → executed or rejected; what was ordered never changes.
CREATE FUNCTION treasury_guard_funding_order() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' THEN
        RAISE EXCEPTION 'funding orders are never removed: % refused', TG_OP
            USING ERRCODE = 'restrict_violation', CONSTRAINT = 'funding_orders_permanent';
    END IF;
    IF OLD.state <> 1 OR (NEW.id, NEW.programme_id, NEW.amount_tiyn, NEW.approval_threshold_tiyn,
                          NEW.created_by, NEW.created_at)
                         IS DISTINCT FROM (OLD.id, OLD.programme_id, OLD.amount_tiyn,
                                           OLD.approval_threshold_tiyn, OLD.created_by, OLD.created_at) THEN
        RAISE EXCEPTION 'funding order %: decided once, and what was ordered never changes', OLD.id
            USING ERRCODE = 'restrict_violation', CONSTRAINT = 'funding_orders_decided_once';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER funding_orders_guard BEFORE UPDATE OR DELETE ON funding_orders
    FOR EACH ROW EXECUTE FUNCTION treasury_guard_funding_order();
ALTER TABLE funding_orders ENABLE ALWAYS TRIGGER funding_orders_guard;

-- A national programme's regional sub-fund (an akimat's), one per region; the account is the ledger's
-- REGIONAL_FUND registered in voucher_funds.
CREATE TABLE sub_funds (
    account_id uuid NOT NULL,
    programme_id uuid NOT NULL,
    region text NOT NULL,
    created_by text NOT NULL,
    "timestamp" bigint NOT NULL,
    CONSTRAINT pk_sub_funds PRIMARY KEY (account_id),
    CONSTRAINT uq_sub_funds_programme_id_region UNIQUE (programme_id, region),
    CONSTRAINT fk_sub_funds_programme_id_programmes FOREIGN KEY (programme_id) REFERENCES programmes (id),
    CONSTRAINT fk_sub_funds_account_id_voucher_funds FOREIGN KEY (account_id)
        REFERENCES voucher_funds (account_id)
);

-- Moves between a programme's fund and one of its sub-funds. direction: 1 allocate (fund → sub-fund),
-- 2 take back (sub-fund → fund). The id is the officer's idempotency key and names the ledger transfer.
CREATE TABLE fund_allocations (
    id uuid NOT NULL,
    programme_id uuid NOT NULL,
    sub_fund_account_id uuid NOT NULL,
    direction smallint NOT NULL,
    amount_tiyn bigint NOT NULL,
    officer text NOT NULL,
    transfer_id uuid NOT NULL,
    "timestamp" bigint NOT NULL,
    CONSTRAINT pk_fund_allocations PRIMARY KEY (id),
    CONSTRAINT fk_fund_allocations_sub_fund_account_id_sub_funds FOREIGN KEY (sub_fund_account_id)
        REFERENCES sub_funds (account_id),
    CONSTRAINT ck_fund_allocations_direction_known CHECK (direction IN (1, 2)),
    CONSTRAINT ck_fund_allocations_amount_positive CHECK (amount_tiyn > 0)
);
CREATE INDEX ix_fund_allocations_programme_id ON fund_allocations (programme_id, "timestamp");

-- A bulk issuance from one eligibility list, cut into batches of batch_rows rows (batch n is rows
-- [n * batch_rows, (n + 1) * batch_rows) of the list). Every batch commits its vouchers, its rejections,
-- its issuance_batches row and the job's counters together, so a run that stops anywhere resumes with
-- exactly the batches that did not commit. rows_done counts the rows of committed batches.
-- state: 1 running, 2 finished.
CREATE TABLE issuance_jobs (
    id uuid NOT NULL,
    programme_id uuid NOT NULL,
    source_name text NOT NULL,
    source_sha256 bytea NOT NULL,
    rows_total integer NOT NULL,
    batch_rows integer NOT NULL,
    rows_done integer NOT NULL,
    issued integer NOT NULL,
    already_issued integer NOT NULL,
    rejected integer NOT NULL,
    issued_tiyn bigint NOT NULL,
    state smallint NOT NULL,
    created_by text NOT NULL,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    CONSTRAINT pk_issuance_jobs PRIMARY KEY (id),
    CONSTRAINT fk_issuance_jobs_programme_id_programmes FOREIGN KEY (programme_id) REFERENCES programmes (id),
    CONSTRAINT ck_issuance_jobs_source_sha256_length CHECK (length(source_sha256) = 32),
    CONSTRAINT ck_issuance_jobs_progress_within_list CHECK (rows_done >= 0 AND rows_done <= rows_total),
    CONSTRAINT ck_issuance_jobs_batch_rows_positive CHECK (batch_rows > 0),
    CONSTRAINT ck_issuance_jobs_every_row_counted CHECK (
        issued >= 0 AND already_issued >= 0 AND rejected >= 0
        AND issued + already_issued + rejected = rows_done),
    CONSTRAINT ck_issuance_jobs_state_known CHECK (state IN (1, 2)),
    CONSTRAINT ck_issuance_jobs_finished_when_done CHECK ((state = 2) = (rows_done = rows_total))
);
CREATE INDEX ix_issuance_jobs_programme_id ON issuance_jobs (programme_id, created_at);

-- The batches of a job that committed: each at most once (the primary key), whatever runs it.
CREATE TABLE issuance_batches (
    job_id uuid NOT NULL,
    batch_number integer NOT NULL,
    rows_count integer NOT NULL,
    issued integer NOT NULL,
    already_issued integer NOT NULL,
    rejected integer NOT NULL,
    issued_tiyn bigint NOT NULL,
    "timestamp" bigint NOT NULL,
    CONSTRAINT pk_issuance_batches PRIMARY KEY (job_id, batch_number),
    CONSTRAINT fk_issuance_batches_job_id_issuance_jobs FOREIGN KEY (job_id) REFERENCES issuance_jobs (id),
    CONSTRAINT ck_issuance_batches_every_row_counted CHECK (
        rows_count > 0 AND issued >= 0 AND already_issued >= 0 AND rejected >= 0
        AND issued + already_issued + rejected = rows_count)
);

-- Why a row of a list issued nothing. row_number: the line in the file (a CSV header is line 1).
-- holder: the IIN masked to its last four digits (the report is downloaded; the IIN is personal data).
CREATE TABLE issuance_rejections (
    job_id uuid NOT NULL,
    row_number integer NOT NULL,
    reason text NOT NULL,
    message text NOT NULL,
    holder text NOT NULL,
    CONSTRAINT pk_issuance_rejections PRIMARY KEY (job_id, row_number),
    CONSTRAINT fk_issuance_rejections_job_id_issuance_jobs FOREIGN KEY (job_id) REFERENCES issuance_jobs (id)
);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['sub_funds', 'fund_allocations', 'issuance_batches', 'issuance_rejections']
    LOOP
        EXECUTE format('CREATE TRIGGER %1$s_append_only BEFORE UPDATE OR DELETE ON %1$s
                            FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()', t);
        EXECUTE format('CREATE TRIGGER %1$s_no_truncate BEFORE TRUNCATE ON %1$s
                            FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()', t);
        EXECUTE format('ALTER TABLE %1$s ENABLE ALWAYS TRIGGER %1$s_append_only', t);
        EXECUTE format('ALTER TABLE %1$s ENABLE ALWAYS TRIGGER %1$s_no_truncate', t);
    END LOOP;
END $$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'amiyan_app') THEN
        GRANT SELECT, INSERT ON programme_funding, funding_orders, sub_funds, fund_allocations, issuance_jobs,
            issuance_batches, issuance_rejections TO amiyan_app;
        GRANT UPDATE (funded_tiyn) ON programme_funding TO amiyan_app;
        GRANT UPDATE (state, approved_by, rejected_by, rejection_reason, decided_at, transfer_id)
            ON funding_orders TO amiyan_app;
        GRANT UPDATE (rows_done, issued, already_issued, rejected, issued_tiyn, state, updated_at)
            ON issuance_jobs TO amiyan_app;
    END IF;
END $$;
"""

DOWNGRADE = r"""
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'amiyan_app') THEN
        REVOKE ALL ON programme_funding, funding_orders, sub_funds, fund_allocations, issuance_jobs,
            issuance_batches, issuance_rejections FROM amiyan_app;
    END IF;
END $$;
DROP TABLE issuance_rejections;
DROP TABLE issuance_batches;
DROP TABLE issuance_jobs;
DROP TABLE fund_allocations;
DROP TABLE sub_funds;
DROP TABLE funding_orders;
DROP FUNCTION treasury_guard_funding_order();
DROP TABLE programme_funding;
DROP FUNCTION treasury_guard_programme_funding();
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
