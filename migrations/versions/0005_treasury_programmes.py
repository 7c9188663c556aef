"""Treasury: programmes as officers know them (budget code, ceiling, region, period, paying authority,
state) and providers' paperwork (address, bank account, contract).

Revision ID: 0005_treasury_programmes
Revises: 0004_api_access
Create Date: 2026-11-29
"""

from alembic import op

revision = "0005_treasury_programmes"
down_revision = "0004_api_access"
branch_labels = None
depends_on = None

UPGRADE = r"""
-- state: 1 draft, 2 open, 3 closed. Vouchers are issued only while open; the state moves only forward.
CREATE TABLE programmes (
    id uuid NOT NULL,
    code text NOT NULL,
    name text NOT NULL,
    purpose text NOT NULL,
    kbk text NOT NULL,
    region text NOT NULL,
    period_start date NOT NULL,
    period_end date NOT NULL,
    asset smallint NOT NULL,
    budget_ceiling_tiyn bigint NOT NULL,
    approval_threshold_tiyn bigint NOT NULL,
    vat_rate text NOT NULL,
    budget_account_id uuid NOT NULL,
    fund_account_id uuid NOT NULL,
    customer_name text NOT NULL,
    customer_bin text NOT NULL,
    customer_address text NOT NULL,
    customer_iban text NOT NULL,
    customer_bank_name text NOT NULL,
    customer_bic text NOT NULL,
    state smallint NOT NULL,
    created_by text NOT NULL,
    "timestamp" bigint NOT NULL,
    CONSTRAINT pk_programmes PRIMARY KEY (id),
    CONSTRAINT uq_programmes_code UNIQUE (code),
    CONSTRAINT ck_programmes_code_format CHECK (code ~ '^[A-Z0-9][A-Z0-9-]{1,39}$'),
    CONSTRAINT ck_programmes_kbk_format CHECK (kbk ~ '^[0-9]{3} [0-9]{3} [0-9]{3}$'),
    CONSTRAINT ck_programmes_period_ordered CHECK (period_start <= period_end),
    CONSTRAINT ck_programmes_ceiling_positive CHECK (budget_ceiling_tiyn > 0),
    CONSTRAINT ck_programmes_threshold_not_negative CHECK (approval_threshold_tiyn >= 0),
    CONSTRAINT ck_programmes_vat_rate_known CHECK (vat_rate IN ('exempt', '0', '12', '16')),
    CONSTRAINT ck_programmes_state_known CHECK (state BETWEEN 1 AND 3)
);

-- A programme's state only moves forward: draft → open → closed.
CREATE FUNCTION treasury_guard_programme() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' THEN
        RAISE EXCEPTION 'programmes are never removed: % refused', TG_OP
            USING ERRCODE = 'restrict_violation', CONSTRAINT = 'programmes_permanent';
    END IF;
    IF NEW.state < OLD.state THEN
        RAISE EXCEPTION 'programme %: state % cannot go back to %', OLD.id, OLD.state, NEW.state
            USING ERRCODE = 'restrict_violation', CONSTRAINT = 'programmes_state_forward';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER programmes_guard BEFORE UPDATE OR DELETE ON programmes
    FOR EACH ROW EXECUTE FUNCTION treasury_guard_programme();
ALTER TABLE programmes ENABLE ALWAYS TRIGGER programmes_guard;

-- Vouchers are issued only while their programme is open, and a closed programme's policy no longer
-- changes: treasury/ checks both first; these hold for any writer. The programmes are locked FOR SHARE
-- (closing takes them FOR UPDATE), so no issue slips past a close. A programme the ledger knows and the
-- treasury does not (no row here) is not the treasury's to refuse.
CREATE FUNCTION treasury_refuse_issue_outside_open() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    PERFORM 1 FROM programmes WHERE id IN (SELECT DISTINCT programme_id FROM new_vouchers)
     ORDER BY id FOR SHARE;
    SELECT id, state INTO bad FROM programmes
     WHERE id IN (SELECT DISTINCT programme_id FROM new_vouchers) AND state <> 2 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'programme % is not open (state %): no voucher is issued in it', bad.id, bad.state
            USING ERRCODE = 'check_violation', CONSTRAINT = 'programmes_issue_while_open';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER vouchers_issue_while_open AFTER INSERT ON vouchers
    REFERENCING NEW TABLE AS new_vouchers FOR EACH STATEMENT EXECUTE FUNCTION treasury_refuse_issue_outside_open();
ALTER TABLE vouchers ENABLE ALWAYS TRIGGER vouchers_issue_while_open;

CREATE FUNCTION treasury_refuse_policy_when_closed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM programmes WHERE id = NEW.programme_id AND state = 3 FOR SHARE) THEN
        RAISE EXCEPTION 'programme % is closed: its policy no longer changes', NEW.programme_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'programmes_closed_policy';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER voucher_policies_while_not_closed BEFORE INSERT ON voucher_policies
    FOR EACH ROW EXECUTE FUNCTION treasury_refuse_policy_when_closed();
ALTER TABLE voucher_policies ENABLE ALWAYS TRIGGER voucher_policies_while_not_closed;

-- What invoices and payment orders need to know of a provider besides its BIN and name (ledger).
CREATE TABLE provider_profiles (
    provider_id uuid NOT NULL,
    address text NOT NULL,
    iban text NOT NULL,
    bank_name text NOT NULL,
    bic text NOT NULL,
    contract_number text NOT NULL,
    contract_date date NOT NULL,
    "timestamp" bigint NOT NULL,
    CONSTRAINT pk_provider_profiles PRIMARY KEY (provider_id),
    CONSTRAINT fk_provider_profiles_provider_id_providers FOREIGN KEY (provider_id) REFERENCES providers (id),
    CONSTRAINT ck_provider_profiles_iban_format CHECK (iban ~ '^KZ[0-9]{2}[0-9A-Z]{16}$')
);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'amiyan_app') THEN
        GRANT SELECT, INSERT ON programmes, provider_profiles TO amiyan_app;
        GRANT UPDATE (state) ON programmes TO amiyan_app;
        GRANT UPDATE (address, iban, bank_name, bic, contract_number, contract_date, "timestamp")
            ON provider_profiles TO amiyan_app;
    END IF;
END $$;
"""

DOWNGRADE = r"""
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'amiyan_app') THEN
        REVOKE ALL ON programmes, provider_profiles FROM amiyan_app;
    END IF;
END $$;
DROP TRIGGER voucher_policies_while_not_closed ON voucher_policies;
DROP FUNCTION treasury_refuse_policy_when_closed();
DROP TRIGGER vouchers_issue_while_open ON vouchers;
DROP FUNCTION treasury_refuse_issue_outside_open();
DROP TABLE provider_profiles;
DROP TABLE programmes;
DROP FUNCTION treasury_guard_programme();
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
