"""Property, end to end through the database: whatever a provider redeemed in a closed period, its act's
total is the sum of the redemptions that count — to the tiyn — and every line traces to exactly them."""

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.ids import new_id
from ledger.unit_of_work import UnitOfWork
from ledger.vouchers.corrections import RedemptionReversal, reverse_redemptions
from ledger.vouchers.results import ReversalResult
from ledger.vouchers.states import RedemptionPhase
from tests.settlement_world import build_settlement_world, day
from treasury.documents import parse_act_json, parse_invoice_json
from treasury.settlement import document_bytes, reconcile_period

UNIT_PRICE_TIYN = 2_500  # gas: 25 tenge per m³
MEAL_TIYN = 60_000

POLICIES = {
    "set_price": {"price_per_use_tiyn": MEAL_TIYN},
    "free_amount": {},
    "unit_priced": {"unit_price_tiyn": UNIT_PRICE_TIYN, "service": {"name": "Газ / Газ", "unit": "м³"}},
}

redemption = st.fixed_dictionaries(
    {
        "size": st.one_of(st.sampled_from([1, 7, 40]), st.integers(1, 400_000)),
        "days_ago": st.sampled_from([6, 6, 5]),
        "reversed": st.booleans(),
        "reserve_only": st.integers(0, 9).map(lambda n: n == 0),
    }
)


def _amount_and_fields(kind, size):
    if kind == "set_price":
        return MEAL_TIYN, {}
    if kind == "unit_priced":
        units = 1 + size % 40
        return units * UNIT_PRICE_TIYN, {"units": units}
    return size, {}


@settings(max_examples=40, deadline=None)
@given(kind=st.sampled_from(sorted(POLICIES)), redemptions=st.lists(redemption, min_size=1, max_size=9))
def test_an_act_total_always_equals_the_redemptions_it_sums(
    ledger, voucher_ledger, pool, database_url, kind, redemptions
):
    world = build_settlement_world(ledger, voucher_ledger, pool, database_url, **POLICIES[kind])
    served = day(world, 6)
    counted = {}
    for entry in redemptions:
        amount, fields = _amount_and_fields(kind, entry["size"])
        if entry["reserve_only"]:
            fields["phase"] = RedemptionPhase.RESERVE  # holds value; moves none to the provider
        redemption_id = world.redeem_on(day(world, entry["days_ago"]), amount, **fields)
        if entry["reversed"] and not entry["reserve_only"]:
            reversal = RedemptionReversal(new_id(), redemption_id, "property test")
            result = UnitOfWork(pool).run(lambda c, r=reversal: reverse_redemptions(c, [r]))
            assert result == [ReversalResult.ok]
        elif not entry["reserve_only"] and entry["days_ago"] == 6:
            counted[redemption_id] = amount
    world.close_through(served)

    acts = world.issue(served)

    if not counted:
        assert acts == []
        return
    [act] = acts
    body = world.run(lambda c: document_bytes(c, act.number, "act_json"))
    document = parse_act_json(body)  # re-checks every line: amount = quantity × unit price, total = Σ lines
    assert act.total_tiyn == document.total_tiyn == sum(counted.values())
    traced = [rid for line in document.lines for rid in line.redemption_ids]
    assert sorted(traced) == sorted(counted) and len(traced) == len(set(traced))
    for line in document.lines:
        assert line.amount_tiyn == sum(counted[rid] for rid in line.redemption_ids)
    assert hashlib.sha256(body).digest() == act.sha256
    invoice = parse_invoice_json(world.run(lambda c: document_bytes(c, act.number, "invoice_json")))
    assert invoice.total_without_vat_tiyn == act.total_tiyn
    report = world.run(lambda c: reconcile_period(c, world.programme_id, served))
    [row] = report.providers
    assert row.net_tiyn == row.acted_tiyn == act.total_tiyn
    assert [d.kind for d in report.differences] == ["act_awaiting_signature"]
