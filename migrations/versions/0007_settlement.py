"""Settlement: periods closed in order, acts and invoices issued once and never changed, their claims on
redemptions, provider signatures, officers' approvals (four eyes, by a unique constraint), rejections,
take-backs after close, payouts with set-offs, payment orders and returned payments.

Revision ID: 0007_settlement
Revises: 0006_treasury_operations
Create Date: 2026-11-29
"""

from alembic import op

revision = "0007_settlement"
down_revision = "0006_treasury_operations"
branch_labels = None
depends_on = None

UPGRADE = r"""
-- How a programme settles: the period length and the act total above which a second officer approves.
-- Written once (explicitly, or with the defaults when its first period closes) and never changed.
CREATE TABLE settlement_terms (
    programme_id uuid NOT NULL,
    cycle text NOT NULL,
    payout_threshold_tiyn bigint NOT NULL,
    set_by text NOT NULL,
    "timestamp" bigint NOT NULL,
    CONSTRAINT pk_settlement_terms PRIMARY KEY (programme_id),
    CONSTRAINT fk_settlement_terms_programme_id_programmes FOREIGN KEY (programme_id) REFERENCES programmes (id),
    CONSTRAINT ck_settlement_terms_cycle_known CHECK (cycle IN ('month', 'week', 'day')),
    CONSTRAINT ck_settlement_terms_threshold_not_negative CHECK (payout_threshold_tiyn >= 0)
);

-- Closed settlement periods (a row exists once the period is closed). Periods close one after another.
CREATE TABLE settlement_periods (
    programme_id uuid NOT NULL,
    period_start date NOT NULL,
    period_end date NOT NULL,
    closed_by text NOT NULL,
    "timestamp" bigint NOT NULL,
    CONSTRAINT pk_settlement_periods PRIMARY KEY (programme_id, period_start),
    CONSTRAINT uq_settlement_periods_programme_id_period_end UNIQUE (programme_id, period_end),
    CONSTRAINT fk_settlement_periods_programme_id_programmes FOREIGN KEY (programme_id) REFERENCES programmes (id),
    CONSTRAINT ck_settlement_periods_ordered CHECK (period_start <= period_end)
);

-- A period follows the last closed one without a gap, and the ledger refuses redemptions dated in it.
CREATE FUNCTION settlement_guard_period() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    last_end date;
    ledger_closed date;
BEGIN
    SELECT max(period_end) INTO last_end FROM settlement_periods WHERE programme_id = NEW.programme_id;
    IF last_end IS NOT NULL AND NEW.period_start <> last_end + 1 THEN
        RAISE EXCEPTION 'period starting % does not follow the last closed period (ended %)',
            NEW.period_start, last_end
            USING ERRCODE = 'check_violation', CONSTRAINT = 'settlement_periods_in_order';
    END IF;
    SELECT closed_through INTO ledger_closed FROM voucher_programmes WHERE id = NEW.programme_id;
    IF ledger_closed IS NULL OR ledger_closed < NEW.period_end THEN
        RAISE EXCEPTION 'period ending % is not closed in the ledger', NEW.period_end
            USING ERRCODE = 'check_violation', CONSTRAINT = 'settlement_periods_closed_in_ledger';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER settlement_periods_guard BEFORE INSERT ON settlement_periods
    FOR EACH ROW EXECUTE FUNCTION settlement_guard_period();
ALTER TABLE settlement_periods ENABLE ALWAYS TRIGGER settlement_periods_guard;

-- Gapless per-programme numbering of acts, invoices and payment orders (the row lock serialises issuers).
CREATE TABLE settlement_counters (
    programme_id uuid NOT NULL,
    kind text NOT NULL,
    last_value bigint NOT NULL,
    CONSTRAINT pk_settlement_counters PRIMARY KEY (programme_id, kind),
    CONSTRAINT ck_settlement_counters_positive CHECK (last_value > 0)
);

-- The Ed25519 keys a provider signs its acts with (its accountant's or director's, not a till's).
CREATE TABLE provider_signing_keys (
    id uuid NOT NULL,
    provider_id uuid NOT NULL,
    public_key bytea NOT NULL,
    name text NOT NULL,
    registered_by text NOT NULL,
    revoked_at bigint,
    "timestamp" bigint NOT NULL,
    CONSTRAINT pk_provider_signing_keys PRIMARY KEY (id),
    CONSTRAINT uq_provider_signing_keys_id_provider_id UNIQUE (id, provider_id),
    CONSTRAINT uq_provider_signing_keys_public_key UNIQUE (public_key),
    CONSTRAINT fk_provider_signing_keys_provider_id_providers FOREIGN KEY (provider_id) REFERENCES providers (id),
    CONSTRAINT ck_provider_signing_keys_public_key_length CHECK (length(public_key) = 32)
);

-- Acts of services rendered, exactly as issued: canonical JSON (the record), its SHA-256, the PDF.
-- kind 1: a regular act for a closed period; kind 2: an adjustment act taking back redemptions of the act
-- it corrects (negative total).
CREATE TABLE settlement_acts (
    id uuid NOT NULL,
    programme_id uuid NOT NULL,
    provider_id uuid NOT NULL,
    number text NOT NULL,
    kind smallint NOT NULL,
    corrects_act_id uuid,
    period_start date NOT NULL,
    period_end date NOT NULL,
    act_date date NOT NULL,
    total_tiyn bigint NOT NULL,
    body bytea NOT NULL,
    sha256 bytea NOT NULL,
    pdf bytea NOT NULL,
    issued_by text NOT NULL,
    "timestamp" bigint NOT NULL,
    CONSTRAINT pk_settlement_acts PRIMARY KEY (id),
    CONSTRAINT uq_settlement_acts_number UNIQUE (number),
    CONSTRAINT uq_settlement_acts_id_provider_id UNIQUE (id, provider_id),
    CONSTRAINT fk_settlement_acts_programme_id_period_start_settlement_periods
        FOREIGN KEY (programme_id, period_start) REFERENCES settlement_periods (programme_id, period_start),
    CONSTRAINT fk_settlement_acts_provider_id_providers FOREIGN KEY (provider_id) REFERENCES providers (id),
    CONSTRAINT fk_settlement_acts_corrects_act_id_settlement_acts
        FOREIGN KEY (corrects_act_id) REFERENCES settlement_acts (id),
    CONSTRAINT ck_settlement_acts_kind CHECK (
        (kind = 1 AND corrects_act_id IS NULL AND total_tiyn > 0)
        OR (kind = 2 AND corrects_act_id IS NOT NULL AND total_tiyn < 0)),
    CONSTRAINT ck_settlement_acts_sha256 CHECK (sha256 = sha256(body))
);
CREATE INDEX ix_settlement_acts_programme_id_period_start ON settlement_acts (programme_id, period_start);
-- A provider's acts, newest first (the providers' API pages them).
CREATE INDEX ix_settlement_acts_provider_id_timestamp ON settlement_acts (provider_id, "timestamp");
CREATE INDEX ix_settlement_acts_corrects_act_id ON settlement_acts (corrects_act_id) WHERE corrects_act_id IS NOT NULL;

-- What each act line sums: redemptions (regular acts) or take-backs of redemptions (adjustment acts).
CREATE TABLE settlement_act_entries (
    act_id uuid NOT NULL,
    entry_id uuid NOT NULL,
    redemption_id uuid NOT NULL,
    line_number integer NOT NULL,
    amount_tiyn bigint NOT NULL,
    CONSTRAINT pk_settlement_act_entries PRIMARY KEY (act_id, entry_id),
    CONSTRAINT fk_settlement_act_entries_act_id_settlement_acts FOREIGN KEY (act_id) REFERENCES settlement_acts (id),
    CONSTRAINT fk_settlement_act_entries_redemption_id_redemptions FOREIGN KEY (redemption_id)
        REFERENCES redemptions (id),
    CONSTRAINT ck_settlement_act_entries_amount_not_zero CHECK (amount_tiyn <> 0)
);
CREATE INDEX ix_settlement_act_entries_redemption_id ON settlement_act_entries (redemption_id);

-- Which live act settles each redemption or take-back: one at most (the primary key), so nothing is ever
-- billed twice. A claim is released only when its act is rejected.
CREATE TABLE settlement_claims (
    entry_id uuid NOT NULL,
    act_id uuid NOT NULL,
    CONSTRAINT pk_settlement_claims PRIMARY KEY (entry_id),
    CONSTRAINT fk_settlement_claims_act_id_settlement_acts FOREIGN KEY (act_id) REFERENCES settlement_acts (id)
);
CREATE INDEX ix_settlement_claims_act_id ON settlement_claims (act_id);

CREATE TABLE settlement_invoices (
    id uuid NOT NULL,
    act_id uuid NOT NULL,
    number text NOT NULL,
    invoice_date date NOT NULL,
    vat_rate text NOT NULL,
    total_without_vat_tiyn bigint NOT NULL,
    total_vat_tiyn bigint NOT NULL,
    total_with_vat_tiyn bigint NOT NULL,
    body bytea NOT NULL,
    sha256 bytea NOT NULL,
    pdf bytea NOT NULL,
    "timestamp" bigint NOT NULL,
    CONSTRAINT pk_settlement_invoices PRIMARY KEY (id),
    CONSTRAINT uq_settlement_invoices_act_id UNIQUE (act_id),
    CONSTRAINT uq_settlement_invoices_number UNIQUE (number),
    CONSTRAINT fk_settlement_invoices_act_id_settlement_acts FOREIGN KEY (act_id) REFERENCES settlement_acts (id),
    CONSTRAINT ck_settlement_invoices_totals CHECK (total_with_vat_tiyn = total_without_vat_tiyn + total_vat_tiyn),
    CONSTRAINT ck_settlement_invoices_sha256 CHECK (sha256 = sha256(body))
);

-- Where an act is in its workflow: 1 issued, 2 signed, 3 approved once (a second officer must approve),
-- 4 approved, 5 paid, 9 rejected. Forward only; an approved or paid act is never rejected.
CREATE TABLE settlement_act_states (
    act_id uuid NOT NULL,
    state smallint NOT NULL,
    "timestamp" bigint NOT NULL,
    CONSTRAINT pk_settlement_act_states PRIMARY KEY (act_id),
    CONSTRAINT fk_settlement_act_states_act_id_settlement_acts FOREIGN KEY (act_id) REFERENCES settlement_acts (id),
    CONSTRAINT ck_settlement_act_states_known CHECK (state IN (1, 2, 3, 4, 5, 9))
);

CREATE FUNCTION settlement_guard_act_state() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' THEN
        RAISE EXCEPTION 'act states are never removed: % refused', TG_OP
            USING ERRCODE = 'restrict_violation', CONSTRAINT = 'settlement_act_states_permanent';
    END IF;
    IF NEW.act_id <> OLD.act_id OR NEW.state <= OLD.state OR (NEW.state = 9 AND OLD.state >= 4) THEN
        RAISE EXCEPTION 'act %: state % cannot become %', OLD.act_id, OLD.state, NEW.state
            USING ERRCODE = 'restrict_violation', CONSTRAINT = 'settlement_act_states_forward';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER settlement_act_states_guard BEFORE UPDATE OR DELETE ON settlement_act_states
    FOR EACH ROW EXECUTE FUNCTION settlement_guard_act_state();
ALTER TABLE settlement_act_states ENABLE ALWAYS TRIGGER settlement_act_states_guard;

-- A claim goes only with its act's rejection.
CREATE FUNCTION settlement_guard_claim() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' OR NOT EXISTS (SELECT 1 FROM act_rejections WHERE act_id = OLD.act_id) THEN
        RAISE EXCEPTION 'the claim of act % on % stands until the act is rejected', OLD.act_id, OLD.entry_id
            USING ERRCODE = 'restrict_violation', CONSTRAINT = 'settlement_claims_released_by_rejection';
    END IF;
    RETURN OLD;
END $$;

-- The provider's signature over the purpose-tagged canonical JSON of the act; the key must be the act's
-- provider's (the composite keys say so).
CREATE TABLE act_signatures (
    act_id uuid NOT NULL,
    provider_id uuid NOT NULL,
    key_id uuid NOT NULL,
    signature bytea NOT NULL,
    "timestamp" bigint NOT NULL,
    CONSTRAINT pk_act_signatures PRIMARY KEY (act_id),
    CONSTRAINT fk_act_signatures_act_id_provider_id_settlement_acts FOREIGN KEY (act_id, provider_id)
        REFERENCES settlement_acts (id, provider_id),
    CONSTRAINT fk_act_signatures_key_id_provider_id_provider_signing_keys FOREIGN KEY (key_id, provider_id)
        REFERENCES provider_signing_keys (id, provider_id),
    CONSTRAINT ck_act_signatures_signature_length CHECK (length(signature) = 64)
);

-- Officers' approvals: step 1, and step 2 above the programme's payout threshold. No officer approves
-- the same act twice (uq_act_approvals_act_id_officer): the four-eyes rule, at the database.
CREATE TABLE act_approvals (
    act_id uuid NOT NULL,
    step smallint NOT NULL,
    officer text NOT NULL,
    "timestamp" bigint NOT NULL,
    CONSTRAINT pk_act_approvals PRIMARY KEY (act_id, step),
    CONSTRAINT uq_act_approvals_act_id_officer UNIQUE (act_id, officer),
    CONSTRAINT fk_act_approvals_act_id_settlement_acts FOREIGN KEY (act_id) REFERENCES settlement_acts (id),
    CONSTRAINT ck_act_approvals_step CHECK (step IN (1, 2)),
    CONSTRAINT ck_act_approvals_officer_named CHECK (length(officer) > 0)
);

CREATE TABLE act_rejections (
    act_id uuid NOT NULL,
    officer text NOT NULL,
    reason text NOT NULL,
    "timestamp" bigint NOT NULL,
    CONSTRAINT pk_act_rejections PRIMARY KEY (act_id),
    CONSTRAINT fk_act_rejections_act_id_settlement_acts FOREIGN KEY (act_id) REFERENCES settlement_acts (id),
    CONSTRAINT ck_act_rejections_reason_given CHECK (length(reason) > 0)
);

CREATE TRIGGER settlement_claims_guard BEFORE UPDATE OR DELETE ON settlement_claims
    FOR EACH ROW EXECUTE FUNCTION settlement_guard_claim();
ALTER TABLE settlement_claims ENABLE ALWAYS TRIGGER settlement_claims_guard;

-- A redemption of a closed period taken back by the customer (the ledger's reversal is only possible
-- while the period is open): receivable → the voucher's fund, dated in an open period.
CREATE TABLE settlement_disallowances (
    id uuid NOT NULL,
    redemption_id uuid NOT NULL,
    programme_id uuid NOT NULL,
    provider_id uuid NOT NULL,
    amount_tiyn bigint NOT NULL,
    fund_account_id uuid NOT NULL,
    transfer_id uuid NOT NULL,
    reason text NOT NULL,
    officer text NOT NULL,
    effective_date date NOT NULL,
    "timestamp" bigint NOT NULL,
    CONSTRAINT pk_settlement_disallowances PRIMARY KEY (id),
    CONSTRAINT uq_settlement_disallowances_redemption_id UNIQUE (redemption_id),
    CONSTRAINT fk_settlement_disallowances_redemption_id_redemptions FOREIGN KEY (redemption_id)
        REFERENCES redemptions (id),
    CONSTRAINT ck_settlement_disallowances_amount_positive CHECK (amount_tiyn > 0),
    CONSTRAINT ck_settlement_disallowances_reason_given CHECK (length(reason) > 0)
);
CREATE INDEX ix_settlement_disallowances_programme_id_provider_id
    ON settlement_disallowances (programme_id, provider_id);

CREATE FUNCTION settlement_refuse_double_take_back() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM redemption_reversals WHERE redemption_id = NEW.redemption_id) THEN
        RAISE EXCEPTION 'redemption % was reversed already', NEW.redemption_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'settlement_disallowances_not_reversed';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER settlement_disallowances_not_reversed BEFORE INSERT ON settlement_disallowances
    FOR EACH ROW EXECUTE FUNCTION settlement_refuse_double_take_back();
ALTER TABLE settlement_disallowances ENABLE ALWAYS TRIGGER settlement_disallowances_not_reversed;

-- The decision to pay an approved regular act: once per act (the primary key). amount + set-off = the act's
-- total: the set-off is what approved adjustment acts took back from this provider and programme.
CREATE TABLE settlement_payouts (
    act_id uuid NOT NULL,
    programme_id uuid NOT NULL,
    provider_id uuid NOT NULL,
    amount_tiyn bigint NOT NULL,
    setoff_tiyn bigint NOT NULL,
    clearing_transfer_id uuid,
    officer text NOT NULL,
    "timestamp" bigint NOT NULL,
    CONSTRAINT pk_settlement_payouts PRIMARY KEY (act_id),
    CONSTRAINT fk_settlement_payouts_act_id_provider_id_settlement_acts FOREIGN KEY (act_id, provider_id)
        REFERENCES settlement_acts (id, provider_id),
    CONSTRAINT ck_settlement_payouts_amounts CHECK (amount_tiyn >= 0 AND setoff_tiyn >= 0),
    CONSTRAINT ck_settlement_payouts_transfer CHECK ((amount_tiyn > 0) = (clearing_transfer_id IS NOT NULL))
);
-- A provider's payouts, newest first.
CREATE INDEX ix_settlement_payouts_provider_id_timestamp ON settlement_payouts (provider_id, "timestamp");

CREATE FUNCTION settlement_guard_payout() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM settlement_acts a JOIN settlement_act_states s ON s.act_id = a.id
                    WHERE a.id = NEW.act_id AND a.kind = 1 AND s.state IN (4, 5)
                      AND a.total_tiyn = NEW.amount_tiyn + NEW.setoff_tiyn) THEN
        RAISE EXCEPTION 'act % is not an approved regular act whose total is amount + set-off', NEW.act_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'settlement_payouts_match_act';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER settlement_payouts_match_act BEFORE INSERT ON settlement_payouts
    FOR EACH ROW EXECUTE FUNCTION settlement_guard_payout();
ALTER TABLE settlement_payouts ENABLE ALWAYS TRIGGER settlement_payouts_match_act;

-- Which adjustment act each set-off consumed; an adjustment is never set off beyond its amount.
CREATE TABLE settlement_setoffs (
    act_id uuid NOT NULL,
    adjustment_act_id uuid NOT NULL,
    amount_tiyn bigint NOT NULL,
    CONSTRAINT pk_settlement_setoffs PRIMARY KEY (act_id, adjustment_act_id),
    CONSTRAINT fk_settlement_setoffs_act_id_settlement_payouts FOREIGN KEY (act_id)
        REFERENCES settlement_payouts (act_id),
    CONSTRAINT fk_settlement_setoffs_adjustment_act_id_settlement_acts FOREIGN KEY (adjustment_act_id)
        REFERENCES settlement_acts (id),
    CONSTRAINT ck_settlement_setoffs_amount_positive CHECK (amount_tiyn > 0)
);
CREATE INDEX ix_settlement_setoffs_adjustment_act_id ON settlement_setoffs (adjustment_act_id);

CREATE FUNCTION settlement_guard_setoff() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF ((SELECT coalesce(sum(amount_tiyn), 0) FROM settlement_setoffs WHERE adjustment_act_id = NEW.adjustment_act_id)
        > (SELECT -total_tiyn FROM settlement_acts WHERE id = NEW.adjustment_act_id AND kind = 2)) IS NOT FALSE THEN
        RAISE EXCEPTION 'adjustment act % is set off beyond its amount', NEW.adjustment_act_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'settlement_setoffs_within_adjustment';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER settlement_setoffs_within_adjustment AFTER INSERT ON settlement_setoffs
    FOR EACH ROW EXECUTE FUNCTION settlement_guard_setoff();
ALTER TABLE settlement_setoffs ENABLE ALWAYS TRIGGER settlement_setoffs_within_adjustment;

-- Payment orders to the provider's bank account. attempt 1 is the first; attempt n + 1 is allowed only
-- once attempt n came back (payment_returns): one live order per payout, whatever the concurrency.
CREATE TABLE payment_orders (
    id uuid NOT NULL,
    act_id uuid NOT NULL,
    attempt smallint NOT NULL,
    number text NOT NULL,
    order_date date NOT NULL,
    amount_tiyn bigint NOT NULL,
    kbk text NOT NULL,
    purpose text NOT NULL,
    payee_name text NOT NULL,
    payee_bin text NOT NULL,
    iban text NOT NULL,
    bank_name text NOT NULL,
    bic text NOT NULL,
    transfer_id uuid NOT NULL,
    officer text NOT NULL,
    "timestamp" bigint NOT NULL,
    CONSTRAINT pk_payment_orders PRIMARY KEY (id),
    CONSTRAINT uq_payment_orders_number UNIQUE (number),
    CONSTRAINT uq_payment_orders_act_id_attempt UNIQUE (act_id, attempt),
    CONSTRAINT fk_payment_orders_act_id_settlement_payouts FOREIGN KEY (act_id) REFERENCES settlement_payouts (act_id),
    CONSTRAINT ck_payment_orders_attempt_positive CHECK (attempt > 0),
    CONSTRAINT ck_payment_orders_amount_positive CHECK (amount_tiyn > 0),
    CONSTRAINT ck_payment_orders_iban_format CHECK (iban ~ '^KZ[0-9]{2}[0-9A-Z]{16}$')
);

CREATE TABLE payment_returns (
    order_id uuid NOT NULL,
    reason text NOT NULL,
    transfer_id uuid NOT NULL,
    officer text NOT NULL,
    "timestamp" bigint NOT NULL,
    CONSTRAINT pk_payment_returns PRIMARY KEY (order_id),
    CONSTRAINT fk_payment_returns_order_id_payment_orders FOREIGN KEY (order_id) REFERENCES payment_orders (id),
    CONSTRAINT ck_payment_returns_reason_given CHECK (length(reason) > 0)
);

CREATE FUNCTION settlement_guard_payment_order() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.amount_tiyn <> (SELECT amount_tiyn FROM settlement_payouts WHERE act_id = NEW.act_id) THEN
        RAISE EXCEPTION 'payment order % is not for the payout amount of act %', NEW.number, NEW.act_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'payment_orders_match_payout';
    END IF;
    IF NEW.attempt > 1 AND NOT EXISTS (
        SELECT 1 FROM payment_orders o JOIN payment_returns r ON r.order_id = o.id
         WHERE o.act_id = NEW.act_id AND o.attempt = NEW.attempt - 1) THEN
        RAISE EXCEPTION 'act % has a payment order that was not returned', NEW.act_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'payment_orders_after_return';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER payment_orders_guard BEFORE INSERT ON payment_orders
    FOR EACH ROW EXECUTE FUNCTION settlement_guard_payment_order();
ALTER TABLE payment_orders ENABLE ALWAYS TRIGGER payment_orders_guard;

-- Only revoked_at of a signing key ever changes, once.
CREATE FUNCTION settlement_guard_signing_key() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' OR OLD.revoked_at IS NOT NULL OR
       (NEW.id, NEW.provider_id, NEW.public_key, NEW.name, NEW.registered_by, NEW."timestamp") IS DISTINCT FROM
       (OLD.id, OLD.provider_id, OLD.public_key, OLD.name, OLD.registered_by, OLD."timestamp") THEN
        RAISE EXCEPTION 'signing key %: only a revocation may change it, once', OLD.id
            USING ERRCODE = 'restrict_violation', CONSTRAINT = 'provider_signing_keys_revoke_only';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER provider_signing_keys_guard BEFORE UPDATE OR DELETE ON provider_signing_keys
    FOR EACH ROW EXECUTE FUNCTION settlement_guard_signing_key();
ALTER TABLE provider_signing_keys ENABLE ALWAYS TRIGGER provider_signing_keys_guard;

-- Documents and their history are append-only (ledger_refuse_change comes from 0001).
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['settlement_terms', 'settlement_periods', 'settlement_acts', 'settlement_act_entries',
                             'settlement_invoices', 'act_signatures', 'act_approvals', 'act_rejections',
                             'settlement_disallowances', 'settlement_payouts', 'settlement_setoffs',
                             'payment_orders', 'payment_returns']
    LOOP
        EXECUTE format('CREATE TRIGGER %1$s_append_only BEFORE UPDATE OR DELETE ON %1$s
                            FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()', t);
        EXECUTE format('ALTER TABLE %1$s ENABLE ALWAYS TRIGGER %1$s_append_only', t);
    END LOOP;
    FOREACH t IN ARRAY ARRAY['settlement_terms', 'settlement_periods', 'settlement_acts', 'settlement_act_entries',
                             'settlement_invoices', 'act_signatures', 'act_approvals', 'act_rejections',
                             'settlement_disallowances', 'settlement_payouts', 'settlement_setoffs',
                             'payment_orders', 'payment_returns', 'settlement_claims', 'settlement_act_states',
                             'provider_signing_keys']
    LOOP
        EXECUTE format('CREATE TRIGGER %1$s_no_truncate BEFORE TRUNCATE ON %1$s
                            FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()', t);
        EXECUTE format('ALTER TABLE %1$s ENABLE ALWAYS TRIGGER %1$s_no_truncate', t);
    END LOOP;
END $$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'amiyan_app') THEN
        GRANT SELECT, INSERT ON settlement_terms, settlement_periods, settlement_counters, provider_signing_keys,
            settlement_acts, settlement_act_entries, settlement_claims, settlement_invoices,
            settlement_act_states, act_signatures, act_approvals, act_rejections, settlement_disallowances,
            settlement_payouts, settlement_setoffs, payment_orders, payment_returns TO amiyan_app;
        GRANT UPDATE (last_value) ON settlement_counters TO amiyan_app;
        GRANT UPDATE (state, "timestamp") ON settlement_act_states TO amiyan_app;
        GRANT UPDATE (revoked_at) ON provider_signing_keys TO amiyan_app;
        GRANT DELETE ON settlement_claims TO amiyan_app;
    END IF;
END $$;
"""

DOWNGRADE = r"""
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'amiyan_app') THEN
        REVOKE ALL ON settlement_terms, settlement_periods, settlement_counters, provider_signing_keys,
            settlement_acts, settlement_act_entries, settlement_claims, settlement_invoices,
            settlement_act_states, act_signatures, act_approvals, act_rejections, settlement_disallowances,
            settlement_payouts, settlement_setoffs, payment_orders, payment_returns FROM amiyan_app;
    END IF;
END $$;
DROP TABLE payment_returns;
DROP TABLE payment_orders;
DROP FUNCTION settlement_guard_payment_order();
DROP TABLE settlement_setoffs;
DROP FUNCTION settlement_guard_setoff();
DROP TABLE settlement_payouts;
DROP FUNCTION settlement_guard_payout();
DROP TABLE settlement_disallowances;
DROP FUNCTION settlement_refuse_double_take_back();
DROP TABLE settlement_claims;
DROP FUNCTION settlement_guard_claim();
DROP TABLE act_rejections;
DROP TABLE act_approvals;
DROP TABLE act_signatures;
DROP TABLE settlement_act_states;
DROP FUNCTION settlement_guard_act_state();
DROP TABLE settlement_invoices;
DROP TABLE settlement_act_entries;
DROP TABLE settlement_acts;
DROP TABLE provider_signing_keys;
DROP FUNCTION settlement_guard_signing_key();
DROP TABLE settlement_counters;
DROP TABLE settlement_periods;
DROP FUNCTION settlement_guard_period();
DROP TABLE settlement_terms;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
