"""The treasury for the schemathesis run against the live server (`tests.test_api_schemathesis`): programmes
far enough along that every treasury route has something to succeed on, and the known-good requests that
take them one step further each, in order.

No tests here. The scene, built with the domain's own functions before the server is asked anything: an
open national programme (funded, a sub-fund, two funding orders waiting for a second officer, an active
voucher), a draft to open, an open programme to close, a registered provider, and an eligibility list
whose job id is known before it is uploaded (the same file for the same programme is the same job).
"""

import hashlib
import uuid
from dataclasses import dataclass
from functools import partial
from typing import Any

from ledger.ids import new_id
from ledger.unit_of_work import UnitOfWork
from tests.test_api_treasury_support import programme_body
from tests.treasury_operations_world import MAKER, fresh_iins, fund, open_programme
from tests.voucher_world import World, fresh_bin, policy_document
from treasury.allocation import open_sub_fund
from treasury.funding import create_funding_order
from treasury.issuance_jobs import job_id_for
from treasury.programmes import ProgrammeState


@dataclass
class TreasuryLive:
    programme: uuid.UUID  # open, national, funded
    sub_fund: uuid.UUID
    orders: tuple[uuid.UUID, uuid.UUID]  # awaiting approval: one to approve, one to reject
    draft: uuid.UUID
    closable: uuid.UUID
    provider: uuid.UUID
    voucher: uuid.UUID  # active
    eligibility_list: str
    job: uuid.UUID  # the list's job, once uploaded


def build_treasury_live(pool: Any, ledger: Any, voucher_ledger: Any) -> TreasuryLive:
    unit_of_work = UnitOfWork(pool)
    programme = open_programme(unit_of_work, region="national")
    fund(unit_of_work, programme, 10_000_000)
    sub_fund = unit_of_work.run(lambda c: open_sub_fund(c, programme.id, new_id(), "Алматы", MAKER))
    orders = (new_id(), new_id())
    for order in orders:  # above the threshold: they wait for a second officer
        unit_of_work.run(partial(create_funding_order, order_id=order, programme_id=programme.id,
                                 amount_tiyn=1_500_000_000, officer=MAKER))  # fmt: skip
    draft = open_programme(unit_of_work, state=ProgrammeState.DRAFT)
    closable = open_programme(unit_of_work)
    fund(unit_of_work, closable, 1_000_000)
    provider = new_id()
    assert voucher_ledger.register_provider(provider, fresh_bin(), "Асхана № 12", 1).ok
    world = World(ledger, voucher_ledger, programme.id, programme.draft.fund_account_id, terminal=None)  # type: ignore[arg-type]
    voucher = world.issue(amount=100_000)
    eligibility = "iin,entitlement\n" + "".join(f"{iin},100000\n" for iin in fresh_iins(2))
    job = job_id_for(programme.id, hashlib.sha256(eligibility.encode()).digest())
    return TreasuryLive(programme.id, sub_fund.account_id, orders, draft.id, closable.id, provider, voucher,
                        eligibility, job)  # fmt: skip


def treasury_known_good(live: TreasuryLive) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path template, case fields), in the order they must run."""
    programme = {"programme_id": str(live.programme)}
    order = "/v1/treasury/funding-orders/{order_id}"
    job = {"path_parameters": {"job_id": str(live.job)}}
    voucher = {"path_parameters": {"voucher_id": str(live.voucher)}}
    provider = {"path_parameters": {"provider_id": str(live.provider)}}
    profile = {"address": "Астана, ул. Кенесары, 40", "iban": "KZ86125KZT5004100100",
               "bank_name": "АО «Халық Банк»", "bic": "HSBKKZKX", "contract_number": "Д-12/2026",
               "contract_date": "2026-01-15"}  # fmt: skip
    root = "/v1/treasury/programmes/{programme_id}"
    return [
        ("POST", "/v1/treasury/programmes", _idempotent({"body": programme_body()})),
        ("GET", "/v1/treasury/programmes", {}),
        ("GET", root, {"path_parameters": programme}),
        ("POST", f"{root}/open", _idempotent({"path_parameters": {"programme_id": str(live.draft)}})),
        ("POST", f"{root}/policies", _idempotent({"path_parameters": programme, "body": {
            "policy": policy_document(per_use_tiyn_max=200_000)}})),
        ("GET", f"{root}/policies", {"path_parameters": programme}),
        ("POST", f"{root}/funding-orders", _idempotent({"path_parameters": programme,
                                                        "body": {"amount_tiyn": 1}})),
        ("GET", f"{root}/funding-orders", {"path_parameters": programme}),
        ("GET", order, {"path_parameters": {"order_id": str(live.orders[0])}}),
        ("POST", f"{order}/approve", _idempotent({"path_parameters": {"order_id": str(live.orders[0])}})),
        ("POST", f"{order}/reject", _idempotent({"path_parameters": {"order_id": str(live.orders[1])},
                                                 "body": {"reason": "повтор"}})),
        ("POST", f"{root}/sub-funds", _idempotent({"path_parameters": programme,
                                                   "body": {"region": "Шымкент"}})),
        ("GET", f"{root}/sub-funds", {"path_parameters": programme}),
        ("POST", f"{root}/sub-funds/{{account_id}}/allocations", _idempotent({
            "path_parameters": programme | {"account_id": str(live.sub_fund)},
            "body": {"direction": "allocate", "amount_tiyn": 1}})),
        ("POST", "/v1/treasury/providers", _idempotent({"body": {
            "bin": fresh_bin(), "name": "ТОО «Мектеп асханасы»", "category": "canteen"}})),
        ("GET", "/v1/treasury/providers/{provider_id}", provider),
        ("PUT", "/v1/treasury/providers/{provider_id}/profile", provider | {"body": profile}),
        ("POST", f"{root}/providers", _idempotent({"path_parameters": programme,
                                                   "body": {"provider_id": str(live.provider)}})),
        ("POST", f"{root}/issuance-jobs", _idempotent({
            "path_parameters": programme, "body": live.eligibility_list, "media_type": "text/csv"})),
        ("GET", "/v1/treasury/issuance-jobs/{job_id}", job),
        ("GET", f"{root}/issuance-jobs", {"path_parameters": programme}),
        ("GET", "/v1/treasury/issuance-jobs/{job_id}/rejections.csv", job),
        ("GET", "/v1/treasury/vouchers/{voucher_id}", voucher),
        *[("POST", f"/v1/treasury/vouchers/{{voucher_id}}/{step}", _idempotent(voucher | {"body": {
            "reason": "проверка"}})) for step in ("suspend", "resume", "revoke")],
        ("POST", "/v1/treasury/sweeps", _idempotent({})),
        ("GET", f"{root}/positions", {"path_parameters": programme}),
        ("GET", f"{root}/positions", {"path_parameters": programme, "query": {"format": "csv"}}),
        ("POST", f"{root}/close", _idempotent({"path_parameters": {"programme_id": str(live.closable)}})),
    ]  # fmt: skip


def _idempotent(fields: dict[str, Any]) -> dict[str, Any]:
    return fields | {"headers": {"Idempotency-Key": str(new_id())}}
