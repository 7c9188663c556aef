"""The voucher tables (migration 0003) as SQLAlchemy metadata, on the ledger's `metadata` with its naming
convention: tests/test_migrations.py proves the migration builds exactly this."""

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)

from ledger.schema import metadata

voucher_programmes = Table(
    "voucher_programmes",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("asset", SmallInteger, nullable=False),
    Column("fund_account_id", Uuid, nullable=False, unique=True),
    Column("closed_through", Date, nullable=True),
    Column("timestamp", BigInteger, nullable=False),
)

voucher_funds = Table(
    "voucher_funds",
    metadata,
    Column("account_id", Uuid, primary_key=True),
    Column("programme_id", Uuid, ForeignKey("voucher_programmes.id"), nullable=False, index=True),
    Column("timestamp", BigInteger, nullable=False),
)

voucher_policies = Table(
    "voucher_policies",
    metadata,
    Column("programme_id", Uuid, ForeignKey("voucher_programmes.id"), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("valid_from", BigInteger, nullable=False),
    Column("purpose", Text, nullable=False),
    Column("provider_categories", ARRAY(SmallInteger), nullable=False),
    Column("named_providers", ARRAY(Uuid), nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    CheckConstraint("version > 0", name="version_positive"),
)

providers = Table(
    "providers",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("bin", Text, nullable=False, unique=True),
    Column("name", Text, nullable=False),
    Column("category", SmallInteger, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    CheckConstraint("bin ~ '^[0-9]{12}$'", name="bin_digits"),
    CheckConstraint("category > 0", name="category_positive"),
)

programme_providers = Table(
    "programme_providers",
    metadata,
    Column("programme_id", Uuid, ForeignKey("voucher_programmes.id"), primary_key=True),
    Column("provider_id", Uuid, ForeignKey("providers.id"), primary_key=True),
    Column("receivable_account_id", Uuid, nullable=False, unique=True),
    Column("state", SmallInteger, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    CheckConstraint("state BETWEEN 1 AND 4", name="state_known"),
)

terminals = Table(
    "terminals",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("provider_id", Uuid, ForeignKey("providers.id"), nullable=False, index=True),
    Column("public_key", LargeBinary, nullable=False),
    Column("name", Text, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
    Column("timestamp", BigInteger, nullable=False),
    CheckConstraint("length(public_key) = 32", name="public_key_length"),
)

issuer_keys = Table(
    "issuer_keys",
    metadata,
    Column("key_id", Text, primary_key=True),
    Column("public_key", LargeBinary, nullable=False, unique=True),
    Column("issue_until", BigInteger, nullable=False),
    Column("redeem_until", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
    Column("timestamp", BigInteger, nullable=False),
    CheckConstraint("length(public_key) = 32", name="public_key_length"),
    CheckConstraint("issue_until <= redeem_until", name="windows_ordered"),
)

vouchers = Table(
    "vouchers",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("programme_id", Uuid, nullable=False),
    Column("fund_account_id", Uuid, ForeignKey("voucher_funds.account_id"), nullable=False),
    Column("holder_hash", LargeBinary, nullable=False, index=True),
    Column("state", SmallInteger, nullable=False),
    Column("policy_version", Integer, nullable=False),
    Column("amount_tiyn", BigInteger, nullable=False),
    Column("units_max", BigInteger, nullable=False),
    Column("not_before", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("period_uses_max", BigInteger, nullable=False),
    Column("period_tiyn_max", BigInteger, nullable=False),
    Column("period_units_max", BigInteger, nullable=False),
    Column("period_start", Date, nullable=True),
    Column("usage_count", Integer, nullable=False, server_default=text("0")),
    Column("usage_tiyn", BigInteger, nullable=False, server_default=text("0")),
    Column("usage_units", BigInteger, nullable=False, server_default=text("0")),
    Column("units_used", BigInteger, nullable=False, server_default=text("0")),
    Column("purpose", Text, nullable=False),
    Column("issuer_key_id", Text, ForeignKey("issuer_keys.key_id"), nullable=False),
    Column("reference_code", Text, nullable=False, unique=True),
    Column("token_signature", LargeBinary, nullable=False),
    Column("issue_transfer_id", Uuid, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Index("ix_vouchers_programme_id_state", "programme_id", "state"),
    Index("ix_vouchers_expires_at", "expires_at", postgresql_where=text("state IN (1, 2, 4, 5)")),
)

voucher_items = Table(
    "voucher_items",
    metadata,
    Column("voucher_id", Uuid, primary_key=True),
    Column("item_code", Text, primary_key=True),
    Column("quantity_max", Integer, nullable=False),
    Column("quantity_used", Integer, nullable=False, server_default=text("0")),
)

voucher_transitions = Table(
    "voucher_transitions",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("voucher_id", Uuid, nullable=False),
    Column("action", SmallInteger, nullable=False),
    Column("from_state", SmallInteger, nullable=False),
    Column("to_state", SmallInteger, nullable=False),
    Column("transfer_id", Uuid, nullable=True),
    Column("reason", Text, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Index("ix_voucher_transitions_voucher_id", "voucher_id", "timestamp"),
)

redemptions = Table(
    "redemptions",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("voucher_id", Uuid, nullable=False, index=True),
    Column("programme_id", Uuid, nullable=False),
    Column("provider_id", Uuid, nullable=False),
    Column("terminal_id", Uuid, nullable=False),
    Column("phase", SmallInteger, nullable=False),
    Column("reserved_id", Uuid, nullable=True),
    Column("amount_tiyn", BigInteger, nullable=False),
    Column("units", BigInteger, nullable=False),
    Column("items", LargeBinary, nullable=True),
    Column("requested_at", BigInteger, nullable=False),
    Column("effective_date", Date, nullable=False),
    Column("offline", Boolean, nullable=False),
    Column("request_hash", LargeBinary, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Index(
        "ix_redemptions_provider_id_programme_id_effective_date",
        "provider_id",
        "programme_id",
        "effective_date",
    ),
    Index("ix_redemptions_provider_id_timestamp", "provider_id", "timestamp"),
    Index(
        "ix_redemptions_terminal_id_effective_date",
        "terminal_id",
        "effective_date",
        postgresql_where=text("offline"),
    ),
    Index(
        "uq_redemptions_reserved_id",
        "reserved_id",
        unique=True,
        postgresql_where=text("reserved_id IS NOT NULL"),
    ),
)

redemption_failures = Table(
    "redemption_failures",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("result", SmallInteger, nullable=False),
    Column("request_hash", LargeBinary, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
)

redemption_reversals = Table(
    "redemption_reversals",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("redemption_id", Uuid, ForeignKey("redemptions.id"), nullable=False),
    Column("voucher_id", Uuid, nullable=False),
    Column("programme_id", Uuid, nullable=False),
    Column("provider_id", Uuid, nullable=False),
    Column("amount_tiyn", BigInteger, nullable=False),
    Column("credit_account_id", Uuid, nullable=False),
    Column("transfer_id", Uuid, nullable=False),
    Column("reason", Text, nullable=False),
    Column("effective_date", Date, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    UniqueConstraint("redemption_id", name="uq_redemption_reversals_redemption_id"),
    Index("ix_redemption_reversals_provider_id_programme_id", "provider_id", "programme_id"),
)

VOUCHER_TABLES = frozenset(
    table.name
    for table in (
        voucher_programmes, voucher_funds, voucher_policies, providers, programme_providers, terminals,
        issuer_keys, vouchers, voucher_items, voucher_transitions, redemptions, redemption_failures,
        redemption_reversals,
    )
)  # fmt: skip
