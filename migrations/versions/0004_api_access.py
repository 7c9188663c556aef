"""API access: credentials (API keys and OAuth2 clients, each bound to one role and, for a provider, to one
provider) and the Idempotency-Key records of POST requests.

Revision ID: 0004_api_access
Revises: 0003_vouchers
Create Date: 2026-11-24
"""

from alembic import op

revision = "0004_api_access"
down_revision = "0003_vouchers"
branch_labels = None
depends_on = None

UPGRADE = r"""
-- A credential is found by its public id (the visible part of an API key, or the OAuth2 client id); its
-- secret is kept only as SHA-256 of a 256-bit random string (see api/credentials.py for why that suffices).
CREATE TABLE api_credentials (
    id uuid NOT NULL,
    kind text NOT NULL,
    role text NOT NULL,
    provider_id uuid,
    name text NOT NULL,
    public_id text NOT NULL,
    secret_sha256 bytea NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz,
    revoked_at timestamptz,
    CONSTRAINT pk_api_credentials PRIMARY KEY (id),
    CONSTRAINT uq_api_credentials_public_id UNIQUE (public_id),
    CONSTRAINT ck_api_credentials_kind CHECK (kind IN ('api_key', 'oauth2_client')),
    CONSTRAINT ck_api_credentials_role CHECK (
        role IN ('treasury_officer', 'provider', 'auditor', 'mobile_backend', 'operator')),
    -- A provider's credential names exactly one provider; no other role is bound to one.
    CONSTRAINT ck_api_credentials_provider_binding CHECK ((role = 'provider') = (provider_id IS NOT NULL)),
    CONSTRAINT ck_api_credentials_name CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    CONSTRAINT ck_api_credentials_public_id CHECK (public_id ~ '^[0-9a-f]{16}$'),
    CONSTRAINT ck_api_credentials_secret_sha256_length CHECK (length(secret_sha256) = 32),
    CONSTRAINT ck_api_credentials_expiry_after_creation CHECK (expires_at IS NULL OR expires_at > created_at)
);

-- A credential's binding never changes and it is never deleted (request logs name it); the only change is
-- its revocation, once.
CREATE FUNCTION api_credentials_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'a credential is revoked, never deleted'
            USING ERRCODE = 'restrict_violation', CONSTRAINT = 'api_credentials_permanent';
    END IF;
    IF OLD.revoked_at IS NOT NULL OR NEW.revoked_at IS NULL
       OR (NEW.id, NEW.kind, NEW.role, NEW.provider_id, NEW.name, NEW.public_id, NEW.secret_sha256,
           NEW.created_at, NEW.expires_at)
          IS DISTINCT FROM
          (OLD.id, OLD.kind, OLD.role, OLD.provider_id, OLD.name, OLD.public_id, OLD.secret_sha256,
           OLD.created_at, OLD.expires_at) THEN
        RAISE EXCEPTION 'a credential can only be revoked, once'
            USING ERRCODE = 'restrict_violation', CONSTRAINT = 'api_credentials_revoke_only';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER api_credentials_guard BEFORE UPDATE OR DELETE ON api_credentials
    FOR EACH ROW EXECUTE FUNCTION api_credentials_guard();
ALTER TABLE api_credentials ENABLE ALWAYS TRIGGER api_credentials_guard;

-- One row per (credential, Idempotency-Key): claimed while its request runs (status_code NULL), then the
-- stored response. claim_id names the request holding the claim, so a request whose claim was taken over
-- (it ran past the in-flight limit) cannot store its response.
CREATE TABLE api_idempotency_keys (
    credential_id uuid NOT NULL,
    idempotency_key text NOT NULL,
    request_sha256 bytea NOT NULL,
    claim_id uuid NOT NULL,
    claimed_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    status_code smallint,
    response_headers jsonb,
    response_body bytea,
    completed_at timestamptz,
    CONSTRAINT pk_api_idempotency_keys PRIMARY KEY (credential_id, idempotency_key),
    CONSTRAINT fk_api_idempotency_keys_credential_id_api_credentials
        FOREIGN KEY (credential_id) REFERENCES api_credentials (id),
    CONSTRAINT ck_api_idempotency_keys_key CHECK (idempotency_key ~ '^[\x21-\x7e]{1,255}$'),
    CONSTRAINT ck_api_idempotency_keys_request_sha256_length CHECK (length(request_sha256) = 32),
    CONSTRAINT ck_api_idempotency_keys_response_complete CHECK (
        (status_code IS NULL AND response_headers IS NULL AND response_body IS NULL AND completed_at IS NULL)
        OR (status_code BETWEEN 100 AND 599 AND response_headers IS NOT NULL AND response_body IS NOT NULL
            AND completed_at IS NOT NULL))
);
CREATE INDEX ix_api_idempotency_keys_expires_at ON api_idempotency_keys (expires_at);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'amiyan_app') THEN
        GRANT SELECT, INSERT ON api_credentials TO amiyan_app;
        GRANT UPDATE (revoked_at) ON api_credentials TO amiyan_app;
        GRANT SELECT, INSERT, UPDATE, DELETE ON api_idempotency_keys TO amiyan_app;
    END IF;
END $$;
"""

DOWNGRADE = r"""
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'amiyan_app') THEN
        REVOKE ALL ON api_credentials, api_idempotency_keys FROM amiyan_app;
    END IF;
END $$;
DROP TABLE api_idempotency_keys;
DROP TABLE api_credentials;
DROP FUNCTION api_credentials_guard();
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
