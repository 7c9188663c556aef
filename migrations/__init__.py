"""Alembic migrations: the only way the schema changes. Hand-written SQL, each with its reverse."""
