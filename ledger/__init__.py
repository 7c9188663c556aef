"""Amiyan's core: double-entry accounts and transfers, vouchers, and the audit log.

Imports nothing from api/ or treasury/ and never reads the environment."""
