"""Settlement: providers are paid only for what was redeemed, on documents a Kazakh accountant recognises.

The workflow, each step a function taking the caller's connection (one transaction, the unit of work
commits; a refusal is `treasury.errors.Refused` with a stable code and rolls everything back):

    close_period(c, programme_id, officer)                        freeze the next period (in order)
    issue_provider_acts(c, programme_id, provider_id, start, officer)
    issue_period_acts(unit_of_work, programme_id, start, officer) acts + invoices, provider by provider
    register_signing_key(...), sign_act(c, number, key_id, signature)
    approve_act(c, number, officer), reject_act(c, number, officer, reason)
    pay_act(c, number, officer)                                   receivable → clearing → bank
    record_payment_return(c, order_number, reason, officer), repay_act(c, number, officer)
    disallow_redemptions(c, programme_id, ids, reason, officer)   take back after the period closed
    reconcile_period(c, programme_id, start)                      + reconciliation_json / _csv

The map:
  periods.py          cycles (month by default, week, day), terms (payout threshold), closing in order
  sources.py          which redemptions an act sums, how they are priced, take-backs to adjust
  parties.py          customer and contractor from programmes / providers / provider_profiles
  numbering.py        АКТ-/СФ-/ПП- numbers (gapless per programme) and the provider settlement lock
  records.py          stored acts and invoices (JSON, SHA-256, PDF), entries, claims, act states
  issuing.py          drawing up regular and adjustment acts with their invoices
  approvals.py        provider signing keys, signatures, approvals (four eyes), rejections
  payouts.py          payouts with set-offs and payment orders
  returns.py          returned payments and paying them again
  disallowances.py    redemptions taken back after their period closed
  reconciliation.py   redemptions = acts = invoices = payouts (+ pending), every difference listed
"""

from treasury.settlement.approvals import (
    act_signing_bytes,
    approve_act,
    register_signing_key,
    reject_act,
    revoke_signing_key,
    sign_act,
)
from treasury.settlement.disallowances import Disallowance, disallow_redemptions
from treasury.settlement.issuing import IssuedAct, ProviderOutcome, issue_period_acts, issue_provider_acts
from treasury.settlement.parties import ProviderProfile, record_provider_profile
from treasury.settlement.payouts import PaymentOrder, Payout, find_payout, pay_act
from treasury.settlement.periods import (
    ClosedPeriod,
    SettlementCycle,
    SettlementPeriod,
    SettlementTerms,
    close_period,
    closed_periods,
    next_period,
    period_containing,
    programme_id_by_code,
    set_settlement_terms,
    settlement_terms,
)
from treasury.settlement.reconciliation import Difference, Reconciliation, reconcile_period
from treasury.settlement.reconciliation_formats import differences_csv, providers_csv, reconciliation_json
from treasury.settlement.records import ActKind, ActRecord, ActState, acts_of_period, document_bytes, find_act
from treasury.settlement.returns import record_payment_return, repay_act

__all__ = [
    "ActKind",
    "ActRecord",
    "ActState",
    "ClosedPeriod",
    "Difference",
    "Disallowance",
    "IssuedAct",
    "PaymentOrder",
    "Payout",
    "ProviderOutcome",
    "ProviderProfile",
    "Reconciliation",
    "SettlementCycle",
    "SettlementPeriod",
    "SettlementTerms",
    "act_signing_bytes",
    "acts_of_period",
    "approve_act",
    "close_period",
    "closed_periods",
    "differences_csv",
    "disallow_redemptions",
    "document_bytes",
    "find_act",
    "find_payout",
    "issue_period_acts",
    "issue_provider_acts",
    "next_period",
    "pay_act",
    "period_containing",
    "programme_id_by_code",
    "providers_csv",
    "reconcile_period",
    "reconciliation_json",
    "record_payment_return",
    "record_provider_profile",
    "register_signing_key",
    "reject_act",
    "repay_act",
    "revoke_signing_key",
    "set_settlement_terms",
    "settlement_terms",
    "sign_act",
]
