"""Vouchers: programmes and their versioned policies, providers and terminals, issuer keys, vouchers,
their transitions, prescription items, redemptions; and the database's own non-cashable rule.

Revision ID: 0003_vouchers
Revises: 0002_audit_log
Create Date: 2026-11-29
"""

from alembic import op

revision = "0003_vouchers"
down_revision = "0002_audit_log"
branch_labels = None
depends_on = None

UPGRADE = r"""
-- A programme as the ledger sees it: its asset and main fund. Treasury keeps the paperwork (budget code,
-- ceiling, region, state) in its own tables. closed_through: the last day of the last closed settlement
-- period; no redemption may take an effective date on or before it (moves only forward).
CREATE TABLE voucher_programmes (
    id uuid NOT NULL,
    asset smallint NOT NULL,
    fund_account_id uuid NOT NULL,
    closed_through date,
    "timestamp" bigint NOT NULL,
    CONSTRAINT pk_voucher_programmes PRIMARY KEY (id),
    CONSTRAINT uq_voucher_programmes_fund_account_id UNIQUE (fund_account_id)
);

-- Every account value may return to when a voucher ends: the programme fund and its regional sub-funds.
CREATE TABLE voucher_funds (
    account_id uuid NOT NULL,
    programme_id uuid NOT NULL,
    "timestamp" bigint NOT NULL,
    CONSTRAINT pk_voucher_funds PRIMARY KEY (account_id),
    CONSTRAINT fk_voucher_funds_programme_id_voucher_programmes FOREIGN KEY (programme_id)
        REFERENCES voucher_programmes (id)
);
CREATE INDEX ix_voucher_funds_programme_id ON voucher_funds (programme_id);

-- Versions of a programme's policy. A redemption is judged by the version whose valid_from is the latest
-- at or before the redemption's ledger timestamp. body: the canonical JSON of the whole policy, exactly
-- as the audit log holds it; categories and named providers are copied out for the database's own check.
CREATE TABLE voucher_policies (
    programme_id uuid NOT NULL,
    version integer NOT NULL,
    valid_from bigint NOT NULL,
    purpose text NOT NULL,
    provider_categories smallint[] NOT NULL,
    named_providers uuid[] NOT NULL,
    body bytea NOT NULL,
    "timestamp" bigint NOT NULL,
    CONSTRAINT pk_voucher_policies PRIMARY KEY (programme_id, version),
    CONSTRAINT fk_voucher_policies_programme_id_voucher_programmes FOREIGN KEY (programme_id)
        REFERENCES voucher_programmes (id),
    CONSTRAINT ck_voucher_policies_version_positive CHECK (version > 0)
);

-- Registered providers (canteen suppliers, pharmacies, QazaqGaz, clubs, shops).
CREATE TABLE providers (
    id uuid NOT NULL,
    bin text NOT NULL,
    name text NOT NULL,
    category smallint NOT NULL,
    "timestamp" bigint NOT NULL,
    CONSTRAINT pk_providers PRIMARY KEY (id),
    CONSTRAINT uq_providers_bin UNIQUE (bin),
    CONSTRAINT ck_providers_bin_digits CHECK (bin ~ '^[0-9]{12}$'),
    CONSTRAINT ck_providers_category_positive CHECK (category > 0)
);

-- A provider's enrolment in a programme: its receivable account there and its state
-- (1 pending, 2 active, 3 suspended, 4 withdrawn). Only an active provider may redeem.
CREATE TABLE programme_providers (
    programme_id uuid NOT NULL,
    provider_id uuid NOT NULL,
    receivable_account_id uuid NOT NULL,
    state smallint NOT NULL,
    "timestamp" bigint NOT NULL,
    CONSTRAINT pk_programme_providers PRIMARY KEY (programme_id, provider_id),
    CONSTRAINT uq_programme_providers_receivable_account_id UNIQUE (receivable_account_id),
    CONSTRAINT fk_programme_providers_programme_id_voucher_programmes FOREIGN KEY (programme_id)
        REFERENCES voucher_programmes (id),
    CONSTRAINT fk_programme_providers_provider_id_providers FOREIGN KEY (provider_id) REFERENCES providers (id),
    CONSTRAINT ck_programme_providers_state_known CHECK (state BETWEEN 1 AND 4)
);

-- Point-of-service terminals, each with the Ed25519 key that signs its redemption requests.
CREATE TABLE terminals (
    id uuid NOT NULL,
    provider_id uuid NOT NULL,
    public_key bytea NOT NULL,
    name text NOT NULL,
    revoked_at bigint,
    "timestamp" bigint NOT NULL,
    CONSTRAINT pk_terminals PRIMARY KEY (id),
    CONSTRAINT fk_terminals_provider_id_providers FOREIGN KEY (provider_id) REFERENCES providers (id),
    CONSTRAINT ck_terminals_public_key_length CHECK (length(public_key) = 32)
);
CREATE INDEX ix_terminals_provider_id ON terminals (provider_id);

-- The issuer key set. Tokens are signed only until issue_until and accepted only until redeem_until;
-- a revoked key is accepted for nothing after revoked_at. key_id is the PASERK k4.pid of the public key.
CREATE TABLE issuer_keys (
    key_id text NOT NULL,
    public_key bytea NOT NULL,
    issue_until bigint NOT NULL,
    redeem_until bigint NOT NULL,
    revoked_at bigint,
    "timestamp" bigint NOT NULL,
    CONSTRAINT pk_issuer_keys PRIMARY KEY (key_id),
    CONSTRAINT uq_issuer_keys_public_key UNIQUE (public_key),
    CONSTRAINT ck_issuer_keys_public_key_length CHECK (length(public_key) = 32),
    CONSTRAINT ck_issuer_keys_windows_ordered CHECK (issue_until <= redeem_until)
);

-- One row per voucher; its id is also its ledger account's id. state: 1 offered, 2 accepted, 3 declined,
-- 4 active, 5 suspended, 6 redeemed, 7 expired, 8 revoked. The usage_* columns count the current period's
-- redemptions (period_start names it); the limits are the voucher's own, fixed at issue (they are in the
-- token), and the CHECKs hold them at the database whatever the Python decided.
CREATE TABLE vouchers (
    id uuid NOT NULL,
    programme_id uuid NOT NULL,
    fund_account_id uuid NOT NULL,
    holder_hash bytea NOT NULL,
    state smallint NOT NULL,
    policy_version integer NOT NULL,
    amount_tiyn bigint NOT NULL,
    units_max bigint NOT NULL,
    not_before bigint NOT NULL,
    expires_at bigint NOT NULL,
    period_uses_max bigint NOT NULL,
    period_tiyn_max bigint NOT NULL,
    period_units_max bigint NOT NULL,
    period_start date,
    usage_count integer NOT NULL DEFAULT 0,
    usage_tiyn bigint NOT NULL DEFAULT 0,
    usage_units bigint NOT NULL DEFAULT 0,
    units_used bigint NOT NULL DEFAULT 0,
    purpose text NOT NULL,
    issuer_key_id text NOT NULL,
    reference_code text NOT NULL,
    -- The token is rebuilt from these columns (its claims are a function of them) and this signature.
    token_signature bytea NOT NULL,
    issue_transfer_id uuid NOT NULL,
    "timestamp" bigint NOT NULL,
    CONSTRAINT pk_vouchers PRIMARY KEY (id),
    CONSTRAINT uq_vouchers_reference_code UNIQUE (reference_code),
    CONSTRAINT fk_vouchers_fund_account_id_voucher_funds FOREIGN KEY (fund_account_id)
        REFERENCES voucher_funds (account_id),
    CONSTRAINT fk_vouchers_issuer_key_id_issuer_keys FOREIGN KEY (issuer_key_id) REFERENCES issuer_keys (key_id),
    CONSTRAINT ck_vouchers_state_known CHECK (state BETWEEN 1 AND 8),
    CONSTRAINT ck_vouchers_amount_positive CHECK (amount_tiyn > 0),
    CONSTRAINT ck_vouchers_window_ordered CHECK (not_before < expires_at),
    CONSTRAINT ck_vouchers_token_signature_length CHECK (length(token_signature) = 64),
    CONSTRAINT ck_vouchers_period_uses_within_limit CHECK (usage_count >= 0 AND usage_count <= period_uses_max),
    CONSTRAINT ck_vouchers_period_tiyn_within_limit CHECK (usage_tiyn >= 0 AND usage_tiyn <= period_tiyn_max),
    CONSTRAINT ck_vouchers_period_units_within_limit CHECK (usage_units >= 0 AND usage_units <= period_units_max),
    CONSTRAINT ck_vouchers_units_within_limit CHECK (units_used >= 0 AND units_used <= units_max)
) WITH (fillfactor = 80);  -- room for HOT updates of state and usage
CREATE INDEX ix_vouchers_holder_hash ON vouchers (holder_hash);
CREATE INDEX ix_vouchers_programme_id_state ON vouchers (programme_id, state);
CREATE INDEX ix_vouchers_expires_at ON vouchers (expires_at) WHERE state IN (1, 2, 4, 5);

-- What a voucher's prescription allows, item by item, and how much of it is dispensed or reserved.
CREATE TABLE voucher_items (
    voucher_id uuid NOT NULL,
    item_code text NOT NULL,
    quantity_max integer NOT NULL,
    quantity_used integer NOT NULL DEFAULT 0,
    CONSTRAINT pk_voucher_items PRIMARY KEY (voucher_id, item_code),
    CONSTRAINT ck_voucher_items_quantity_within_limit CHECK (quantity_used >= 0 AND quantity_used <= quantity_max)
);

-- Every lifecycle step after issue, idempotent by its id (the caller's). action: see ledger/vouchers/states.py.
CREATE TABLE voucher_transitions (
    id uuid NOT NULL,
    voucher_id uuid NOT NULL,
    action smallint NOT NULL,
    from_state smallint NOT NULL,
    to_state smallint NOT NULL,
    transfer_id uuid,
    reason text NOT NULL,
    "timestamp" bigint NOT NULL,
    CONSTRAINT pk_voucher_transitions PRIMARY KEY (id)
);
CREATE INDEX ix_voucher_transitions_voucher_id ON voucher_transitions (voucher_id, "timestamp");

-- Redemptions, idempotent by the id the terminal chose (also the id of the ledger transfer it made).
-- phase: 1 single, 2 reserve (two-phase: a pending transfer), 3 post, 4 void. request_hash is the SHA-256
-- of the signed request, so a replay with another body is told apart from a faithful retry.
CREATE TABLE redemptions (
    id uuid NOT NULL,
    voucher_id uuid NOT NULL,
    programme_id uuid NOT NULL,
    provider_id uuid NOT NULL,
    terminal_id uuid NOT NULL,
    phase smallint NOT NULL,
    reserved_id uuid,
    amount_tiyn bigint NOT NULL,
    units bigint NOT NULL,
    items bytea,
    requested_at bigint NOT NULL,
    effective_date date NOT NULL,
    offline boolean NOT NULL,
    request_hash bytea NOT NULL,
    "timestamp" bigint NOT NULL,
    CONSTRAINT pk_redemptions PRIMARY KEY (id),
    CONSTRAINT ck_redemptions_phase_known CHECK (phase BETWEEN 1 AND 4),
    CONSTRAINT ck_redemptions_amount_positive CHECK (amount_tiyn > 0)
);
CREATE INDEX ix_redemptions_voucher_id ON redemptions (voucher_id);
CREATE INDEX ix_redemptions_provider_id_programme_id_effective_date
    ON redemptions (provider_id, programme_id, effective_date);
-- A provider's history, newest first (the providers' API pages it by ledger time).
CREATE INDEX ix_redemptions_provider_id_timestamp ON redemptions (provider_id, "timestamp");
CREATE INDEX ix_redemptions_terminal_id_effective_date ON redemptions (terminal_id, effective_date) WHERE offline;
-- One post or void per reservation, at the database.
CREATE UNIQUE INDEX uq_redemptions_reserved_id ON redemptions (reserved_id) WHERE reserved_id IS NOT NULL;

-- A redemption id whose first attempt was refused stays refused with the same answer.
CREATE TABLE redemption_failures (
    id uuid NOT NULL,
    result smallint NOT NULL,
    request_hash bytea NOT NULL,
    "timestamp" bigint NOT NULL,
    CONSTRAINT pk_redemption_failures PRIMARY KEY (id)
);

-- A redemption taken back before its period closed (a wrong or disputed one): the amount goes from the
-- provider's receivable back to the voucher (or to its fund when the voucher has ended). One per redemption.
CREATE TABLE redemption_reversals (
    id uuid NOT NULL,
    redemption_id uuid NOT NULL,
    voucher_id uuid NOT NULL,
    programme_id uuid NOT NULL,
    provider_id uuid NOT NULL,
    amount_tiyn bigint NOT NULL,
    credit_account_id uuid NOT NULL,
    transfer_id uuid NOT NULL,
    reason text NOT NULL,
    effective_date date NOT NULL,
    "timestamp" bigint NOT NULL,
    CONSTRAINT pk_redemption_reversals PRIMARY KEY (id),
    CONSTRAINT uq_redemption_reversals_redemption_id UNIQUE (redemption_id),
    CONSTRAINT fk_redemption_reversals_redemption_id_redemptions FOREIGN KEY (redemption_id)
        REFERENCES redemptions (id),
    CONSTRAINT ck_redemption_reversals_amount_positive CHECK (amount_tiyn > 0),
    CONSTRAINT ck_redemption_reversals_reason_given CHECK (length(reason) > 0)
);
CREATE INDEX ix_redemption_reversals_provider_id_programme_id ON redemption_reversals (provider_id, programme_id);

-- A redemption's effective date may not fall in a closed settlement period of its programme.
CREATE FUNCTION vouchers_refuse_closed_period() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    late record;
BEGIN
    SELECT n.id, n.effective_date, p.closed_through INTO late
      FROM new_redemptions n JOIN voucher_programmes p ON p.id = n.programme_id
     WHERE p.closed_through IS NOT NULL AND n.effective_date <= p.closed_through
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'redemption % is dated % but its programme is closed through %',
            late.id, late.effective_date, late.closed_through
            USING ERRCODE = 'check_violation', CONSTRAINT = 'redemptions_period_open';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER redemptions_period_open AFTER INSERT ON redemptions
    REFERENCING NEW TABLE AS new_redemptions FOR EACH STATEMENT EXECUTE FUNCTION vouchers_refuse_closed_period();
ALTER TABLE redemptions ENABLE ALWAYS TRIGGER redemptions_period_open;

-- closed_through only moves forward.
CREATE FUNCTION vouchers_guard_programme() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' THEN
        RAISE EXCEPTION 'voucher programmes are never removed: % refused', TG_OP
            USING ERRCODE = 'restrict_violation', CONSTRAINT = 'voucher_programmes_permanent';
    END IF;
    IF (NEW.id, NEW.asset, NEW.fund_account_id, NEW."timestamp") IS DISTINCT FROM
       (OLD.id, OLD.asset, OLD.fund_account_id, OLD."timestamp")
       OR (OLD.closed_through IS NOT NULL AND (NEW.closed_through IS NULL OR NEW.closed_through < OLD.closed_through)) THEN
        RAISE EXCEPTION 'programme %: only closed_through may change, and only forward', OLD.id
            USING ERRCODE = 'restrict_violation', CONSTRAINT = 'voucher_programmes_close_forward';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER voucher_programmes_guard BEFORE UPDATE OR DELETE ON voucher_programmes
    FOR EACH ROW EXECUTE FUNCTION vouchers_guard_programme();
ALTER TABLE voucher_programmes ENABLE ALWAYS TRIGGER voucher_programmes_guard;

-- Non-cashable, at the database: a transfer out of a voucher account may only credit the receivable of a
-- provider enrolled in the voucher's programme whose category (or name) the policy in force at the
-- transfer's timestamp allows, or return value to the voucher's own fund. A voucher account with no
-- voucher row may move nowhere. Statement-level over the inserted rows: one query per batch.
--
-- Every transfer pays for the question "is the debit account a voucher?", so it asks a partial index that
-- holds voucher accounts only (one probe of a small index; a primary-key probe and heap fetch cost about
-- 1.3 µs of the ~9 µs a transfer's insert costs). Each lookup is a LATERAL probe by key, and the settings
-- keep it on its index: with statistics that think the voucher tables tiny (not analysed since a bulk
-- issuance) a plain join hashed or rescanned every voucher for every batch (measured: 12-80 ms for 28
-- redemptions at 31,000 vouchers).
CREATE INDEX ix_accounts_voucher_id ON accounts (id) WHERE code = 5;
CREATE FUNCTION vouchers_refuse_cashing() RETURNS trigger LANGUAGE plpgsql
    SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off SET enable_mergejoin = off
AS $$
DECLARE
    bad record;
BEGIN
    SELECT n.id, n.debit_account_id, n.credit_account_id INTO bad
      FROM new_transfers n
     CROSS JOIN LATERAL (SELECT 1 FROM accounts d WHERE d.id = n.debit_account_id AND d.code = 5 LIMIT 1) debit
      LEFT JOIN LATERAL (
            SELECT v.id, v.fund_account_id, v.programme_id FROM vouchers v WHERE v.id = n.debit_account_id LIMIT 1
           ) v ON true
     WHERE v.id IS NULL
        OR (n.credit_account_id <> v.fund_account_id AND NOT EXISTS (
              SELECT 1
                FROM programme_providers pp
                JOIN providers p ON p.id = pp.provider_id
                CROSS JOIN LATERAL (
                    SELECT vp.provider_categories, vp.named_providers FROM voucher_policies vp
                     WHERE vp.programme_id = v.programme_id AND vp.valid_from <= n."timestamp"
                     ORDER BY vp.valid_from DESC, vp.version DESC LIMIT 1) pol
               WHERE pp.receivable_account_id = n.credit_account_id AND pp.programme_id = v.programme_id
                 AND (p.category = ANY (pol.provider_categories) OR p.id = ANY (pol.named_providers))))
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'transfer % would move voucher % to account %, which its policy does not allow',
            bad.id, bad.debit_account_id, bad.credit_account_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'vouchers_non_cashable';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER transfers_vouchers_non_cashable AFTER INSERT ON transfers
    REFERENCING NEW TABLE AS new_transfers FOR EACH STATEMENT EXECUTE FUNCTION vouchers_refuse_cashing();
ALTER TABLE transfers ENABLE ALWAYS TRIGGER transfers_vouchers_non_cashable;

-- History is append-only (ledger_refuse_change comes from 0001).
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['voucher_funds', 'voucher_policies', 'providers', 'voucher_transitions',
                             'redemptions', 'redemption_failures', 'redemption_reversals']
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
        GRANT SELECT, INSERT ON voucher_funds, voucher_policies, providers, voucher_transitions,
            redemptions, redemption_failures, redemption_reversals, voucher_items TO amiyan_app;
        GRANT SELECT, INSERT ON voucher_programmes, programme_providers, terminals, issuer_keys, vouchers
            TO amiyan_app;
        GRANT UPDATE (closed_through) ON voucher_programmes TO amiyan_app;
        GRANT UPDATE (state) ON programme_providers TO amiyan_app;
        GRANT UPDATE (revoked_at) ON terminals, issuer_keys TO amiyan_app;
        GRANT UPDATE (state, period_start, usage_count, usage_tiyn, usage_units, units_used) ON vouchers
            TO amiyan_app;
        GRANT UPDATE (quantity_used) ON voucher_items TO amiyan_app;
    END IF;
END $$;
"""

DOWNGRADE = r"""
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'amiyan_app') THEN
        REVOKE ALL ON voucher_programmes, voucher_funds, voucher_policies, providers, programme_providers,
            terminals, issuer_keys, vouchers, voucher_items, voucher_transitions, redemptions,
            redemption_failures, redemption_reversals FROM amiyan_app;
    END IF;
END $$;
DROP TRIGGER transfers_vouchers_non_cashable ON transfers;
DROP FUNCTION vouchers_refuse_cashing();
DROP INDEX ix_accounts_voucher_id;
DROP TABLE redemption_failures;
DROP TABLE redemption_reversals;
DROP TABLE redemptions;
DROP FUNCTION vouchers_refuse_closed_period();
DROP TABLE voucher_transitions;
DROP TABLE voucher_items;
DROP TABLE vouchers;
DROP TABLE issuer_keys;
DROP TABLE terminals;
DROP TABLE programme_providers;
DROP TABLE providers;
DROP TABLE voucher_policies;
DROP TABLE voucher_funds;
DROP TABLE voucher_programmes;
DROP FUNCTION vouchers_guard_programme();
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
