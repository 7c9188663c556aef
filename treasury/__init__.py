"""Programmes, funding with approval, allocation, bulk issuance, expiry sweeps, settlement and payouts.

Calls ledger/, never the reverse. (Filled in by the treasury and settlement issues.)"""
