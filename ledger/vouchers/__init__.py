"""Vouchers: the signed token a citizen presents, the keys that sign it, and the rules for redeeming it."""
