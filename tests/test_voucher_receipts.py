"""Receipts: the bytes a receipt signs are exactly the RFC 8785 canonical encoding of its outcomes, whatever
became of each request (a fast encoder writes them; `canonical_bytes` is the definition)."""

import datetime as dt

import hypothesis.strategies as st
from hypothesis import given

from ledger.audit.canonical import canonical_bytes, parse_canonical
from ledger.vouchers.receipts import RedemptionOutcome, outcome_document, receipt_body
from ledger.vouchers.redemption_context import StoredRedemption
from ledger.vouchers.results import RedemptionResult
from ledger.vouchers.states import RedemptionPhase

rows = st.builds(
    StoredRedemption,
    id=st.uuids(),
    voucher_id=st.uuids(),
    programme_id=st.uuids(),
    provider_id=st.uuids(),
    terminal_id=st.uuids(),
    phase=st.sampled_from([int(phase) for phase in RedemptionPhase]),
    reserved_id=st.one_of(st.none(), st.uuids()),
    amount_tiyn=st.integers(0, 2**63 - 1),
    units=st.integers(0, 10**12),
    items=st.none(),
    requested_at=st.integers(0, 2**63 - 1),
    effective_date=st.dates(dt.date(2000, 1, 1), dt.date(2099, 12, 31)),
    offline=st.booleans(),
    request_hash=st.binary(min_size=32, max_size=32),
    timestamp=st.integers(0, 2**63 - 1),
)
outcomes = st.builds(
    RedemptionOutcome,
    request_id=st.one_of(st.none(), st.uuids()),
    result=st.sampled_from(list(RedemptionResult)),
    redemption=st.one_of(st.none(), rows),
    original=st.one_of(st.none(), st.sampled_from(list(RedemptionResult))),
    detail=st.text(max_size=20),
)


@given(st.uuids(), st.lists(outcomes, max_size=20))
def test_a_receipt_body_is_the_canonical_encoding_of_its_outcomes(terminal_id, values):
    expected = canonical_bytes(
        {"terminal": str(terminal_id), "results": [outcome_document(value) for value in values]}
    )
    body = receipt_body(terminal_id, values)
    assert body == expected
    assert parse_canonical(body) == parse_canonical(expected)


@given(st.lists(rows, min_size=1, max_size=10), st.data())
def test_a_batchs_shared_id_texts_write_the_same_audit_events(values, data):
    """Rows of one batch often share a terminal, provider and programme; remembered texts never mix ids."""
    from ledger.vouchers.redemption_context import IdTexts
    from ledger.vouchers.redemption_writes import _redemption_event

    shared = values[0]
    values = [
        row._replace(terminal_id=shared.terminal_id, programme_id=shared.programme_id)
        if data.draw(st.booleans())
        else row
        for row in values
    ]
    voucher = data.draw(st.builds(lambda state: _Voucher(state), st.integers(0, 10)))
    names = IdTexts()
    for row in values:
        shared_event = _redemption_event(row, voucher, names)
        # The same event as a batch of one writes it (nothing remembered), naming this row's own ids.
        assert shared_event == _redemption_event(row, voucher, IdTexts())
        event = parse_canonical(shared_event)
        assert isinstance(event, dict) and event["kind"] == "redemption"
        ids = (row.id, row.voucher_id, row.programme_id, row.provider_id, row.terminal_id)
        named = ("id", "voucher", "programme", "provider", "terminal")
        assert [event[name] for name in named] == [str(id_) for id_ in ids]


class _Voucher:
    def __init__(self, state: int) -> None:
        self.state = state
