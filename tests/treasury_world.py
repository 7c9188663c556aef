"""Programme drafts for treasury tests: valid by default, fresh ids and codes every call."""

import datetime as dt
import secrets

from ledger.identity import BinEntityType, make_valid_bin, make_valid_kz_iban
from ledger.ids import new_id
from ledger.money import Asset
from treasury.programmes import PayingAuthority, ProgrammeDraft

MINISTRY = PayingAuthority(
    name="ГУ «Управление образования города Астаны»",
    bin=make_valid_bin(2001, 3, BinEntityType.resident, 4521),
    address="Астана, ул. Бейбітшілік, 11",
    iban=make_valid_kz_iban("070", "FT00000000012"),
    bank_name="РГУ «Комитет казначейства Министерства финансов РК»",
    bic="KKMFKZ2A",
)


def programme_draft(**overrides) -> ProgrammeDraft:
    fields = dict(
        id=new_id(),
        code=f"SM-2026-{secrets.token_hex(4).upper()}",
        name="Бесплатное горячее питание учащихся 1–4 классов",
        kbk="251 027 015",
        region="Астана",
        period_start=dt.date(2026, 9, 1),
        period_end=dt.date(2027, 5, 31),
        asset=Asset.KZT,
        budget_ceiling_tiyn=50_000_000_00,
        approval_threshold_tiyn=10_000_000_00,
        vat_rate="exempt",
        budget_account_id=new_id(),
        fund_account_id=new_id(),
        customer=MINISTRY,
    )
    fields.update(overrides)
    return ProgrammeDraft(**fields)
