"""The ledger's tables, as SQLAlchemy metadata with stable constraint names.

Alembic migrations (hand-written SQL in migrations/versions) own the schema; this metadata mirrors it so a
test can prove the two agree, and so constraint names have one source for the error map.
"""

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    Table,
    Text,
    Uuid,
    text,
)

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

accounts = Table(
    "accounts",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("asset", SmallInteger, nullable=False),
    Column("code", SmallInteger, nullable=False),
    Column("flags", Integer, nullable=False),
    Column("user_data_128", Uuid, nullable=False),
    Column("user_data_64", BigInteger, nullable=False),
    Column("user_data_32", Integer, nullable=False),
    Column("debits_pending", BigInteger, nullable=False),
    Column("debits_posted", BigInteger, nullable=False),
    Column("credits_pending", BigInteger, nullable=False),
    Column("credits_posted", BigInteger, nullable=False),
    Column("timestamp", BigInteger, nullable=False, unique=True),
    CheckConstraint("asset > 0", name="asset_positive"),
    CheckConstraint("code > 0", name="code_positive"),
    CheckConstraint(
        "debits_pending >= 0 AND debits_posted >= 0 AND credits_pending >= 0 AND credits_posted >= 0",
        name="counters_not_negative",
    ),
    CheckConstraint(
        "flags & 2 = 0 OR debits_pending + debits_posted <= credits_posted",
        name="debits_must_not_exceed_credits",
    ),
    CheckConstraint(
        "flags & 4 = 0 OR credits_pending + credits_posted <= debits_posted",
        name="credits_must_not_exceed_debits",
    ),
    # Voucher accounts only (code 5): how the non-cashable trigger finds a batch's voucher debits.
    Index("ix_accounts_voucher_id", "id", postgresql_where=text("code = 5")),
)

transfers = Table(
    "transfers",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("debit_account_id", Uuid, nullable=False),
    Column("credit_account_id", Uuid, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("asset", SmallInteger, nullable=False),
    Column("code", SmallInteger, nullable=False),
    Column("flags", Integer, nullable=False),
    Column("pending_id", Uuid, nullable=True),
    Column("timeout_s", Integer, nullable=False),
    Column("user_data_128", Uuid, nullable=False),
    Column("user_data_64", BigInteger, nullable=False),
    Column("user_data_32", Integer, nullable=False),
    Column("effective_date", Date, nullable=False),
    Column("timestamp", BigInteger, nullable=False, unique=True),
    CheckConstraint("amount > 0", name="amount_positive"),
    CheckConstraint("debit_account_id <> credit_account_id", name="accounts_different"),
    Index("ix_transfers_debit_account_id_timestamp", "debit_account_id", "timestamp"),
    Index("ix_transfers_credit_account_id_timestamp", "credit_account_id", "timestamp"),
    # At most one post, void or expiry per pending transfer: double posting is impossible at the database.
    Index(
        "uq_transfers_pending_id",
        "pending_id",
        unique=True,
        postgresql_where=text("pending_id IS NOT NULL"),
    ),
)

transfer_failures = Table(
    "transfer_failures",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("result", SmallInteger, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
)

pending_timeouts = Table(
    "pending_timeouts",
    metadata,
    Column("transfer_id", Uuid, primary_key=True),
    Column("expires_at", BigInteger, nullable=False, index=True),
)

# The audit log (migration 0002). The inbox is a queue; segments, nodes and checkpoints are append-only.
audit_inbox = Table(
    "audit_inbox",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("events", LargeBinary, nullable=False),
    Column("event_count", Integer, nullable=False),
    Column("queued_at", DateTime(timezone=True), nullable=False, server_default=text("clock_timestamp()")),
    CheckConstraint("event_count > 0", name="event_count_positive"),
)

audit_segments = Table(
    "audit_segments",
    metadata,
    Column("first_index", BigInteger, primary_key=True, autoincrement=False),
    Column("entry_count", Integer, nullable=False),
    Column("entries", LargeBinary, nullable=False),
    Column("leaf_hashes", LargeBinary, nullable=False),
    Column("integrated_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    CheckConstraint("entry_count > 0", name="entry_count_positive"),
    CheckConstraint("length(leaf_hashes) = 32 * entry_count", name="leaf_hashes_length"),
)

audit_nodes = Table(
    "audit_nodes",
    metadata,
    Column("level", SmallInteger, primary_key=True, autoincrement=False),
    Column("index", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary, nullable=False),
    CheckConstraint("length(hash) = 32", name="hash_length"),
)

audit_tree = Table(
    "audit_tree",
    metadata,
    Column("singleton", Boolean, primary_key=True, server_default=text("true")),
    Column("size", BigInteger, nullable=False),
    Column("compact_range", LargeBinary, nullable=False),
    CheckConstraint("singleton", name="singleton"),
)

audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("root_hash", LargeBinary, nullable=False),
    Column("note", Text, nullable=False),
    Column("previous_size", BigInteger, nullable=False),
    Column("consistency_proof", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    CheckConstraint("previous_size < size", name="grows"),
)

audit_signing_keys = Table(
    "audit_signing_keys",
    metadata,
    Column("verifier_key", Text, primary_key=True),
    Column("added_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
)
