"""Settlement for the schemathesis run against the live server (`tests.test_api_schemathesis`): a programme
settled far enough that every settlement route has something to succeed on, and the known-good requests
that take it one step further each, in order.

No tests here. The scene, built with the domain's own functions before the server is asked anything:

* provider 1: an act for day −6, drawn up but not signed (the requests sign, approve and pay it), and an
  act for day −5 (the requests reject it and take its redemption back);
* provider 2: an act for day −6, paid, its payment returned by the bank and its IBAN corrected since
  (the requests record the return again, which changes nothing, and pay it again).
"""

import base64
import uuid
from dataclasses import dataclass
from typing import Any

import nacl.bindings

from api.credentials import Role
from ledger.ids import new_id
from tests.settlement_world import (
    OFFICER,
    Provider,
    SettlementWorld,
    build_settlement_world,
    day,
    fresh_iban,
)
from tests.test_api_support import issue
from treasury.settlement import act_signing_bytes, record_payment_return

# The provider's settlement routes (under /v1/providers/{provider_id}/).
PROVIDER_SETTLEMENT_SEGMENTS = ("acts", "payouts", "signing-keys")


@dataclass
class SettlementLive:
    world: SettlementWorld
    provider: Provider
    provider_key: str  # a provider credential bound to `provider`
    act: str  # provider 1, day −6: issued
    signature: str  # provider 1's signature over `act`, base64
    rejectable: str  # provider 1, day −5: issued
    rejectable_redemption: uuid.UUID
    returned_act: str  # provider 2, day −6: paid, returned, IBAN corrected
    returned_order: str


def settlement_provider_route(path: str) -> bool:
    prefix = "/v1/providers/{provider_id}/"
    return path.startswith(prefix) and path[len(prefix) :].split("/")[0] in PROVIDER_SETTLEMENT_SEGMENTS


def build_settlement_live(ledger: Any, vouchers: Any, pool: Any, database_url: str) -> SettlementLive:
    world = build_settlement_world(ledger, vouchers, pool, database_url)
    first, second = world.providers[0], world.add_provider()
    world.redeem_on(day(world, 6), 60_000)
    world.redeem_on(day(world, 6), 45_000, provider=second)
    rejectable_redemption = world.redeem_on(day(world, 5), 25_000)
    world.close_through(day(world, 5))
    acts = {act.provider_id: act.number for act in world.issue(day(world, 6))}
    [rejectable] = world.issue(day(world, 5))
    world.sign(acts[second.id], second)
    world.approve(acts[second.id])
    order = world.pay(acts[second.id]).orders[0].number
    world.run(lambda c: record_payment_return(c, order, "счёт закрыт", OFFICER))
    world.record_profile(second.id, fresh_iban())
    to_sign = world.run(lambda c: act_signing_bytes(c, acts[first.id]))
    signature = nacl.bindings.crypto_sign(to_sign, first.signing_secret)[:64]
    return SettlementLive(
        world,
        first,
        issue(world.unit_of_work, Role.provider, first.id).secret,
        acts[first.id],
        base64.b64encode(signature).decode(),
        rejectable.number,
        rejectable_redemption,
        acts[second.id],
        order,
    )


def settlement_known_good(live: SettlementLive) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path template, case fields), in the order they must run."""
    world = live.world
    programme = {"programme_id": str(world.programme_id)}
    period = programme | {"period_start": day(world, 6).isoformat()}
    act = {"path_parameters": {"act_number": live.act}}
    provider_act = {"path_parameters": {"act_number": live.act}}
    documents = ("act.json", "act.pdf", "invoice.json", "invoice.pdf")
    officer = "/v1/treasury/settlement/acts/{act_number}"
    provider = "/v1/providers/{provider_id}/acts/{act_number}"
    settlement = "/v1/treasury/programmes/{programme_id}/settlement"
    public_key, _ = nacl.bindings.crypto_sign_seed_keypair(new_id().bytes * 2)
    return [
        ("GET", f"{settlement}/terms", {"path_parameters": programme}),
        ("PUT", f"{settlement}/terms",
         {"path_parameters": programme, "body": {"cycle": "day", "payout_threshold_tiyn": 10**12}}),
        ("GET", f"{settlement}/periods", {"path_parameters": programme}),
        ("GET", f"{settlement}/periods/{{period_start}}", {"path_parameters": period}),
        ("POST", f"{settlement}/periods/close", _idempotent({"path_parameters": programme})),
        ("POST", f"{settlement}/periods/{{period_start}}/acts", _idempotent({"path_parameters": programme | {
            "period_start": (day(world, 4)).isoformat()}})),
        ("GET", f"{settlement}/periods/{{period_start}}/acts", {"path_parameters": period}),
        ("GET", officer, act),
        *[("GET", f"{officer}/{document}", act) for document in documents],
        ("GET", "/v1/providers/{provider_id}/acts", {}),
        ("GET", provider, provider_act),
        ("GET", f"{provider}/signing-bytes", provider_act),
        ("POST", f"{provider}/signature", _idempotent(provider_act | {"body": {
            "key_id": str(live.provider.signing_key_id), "signature": live.signature}})),
        ("POST", "/v1/providers/{provider_id}/signing-keys", _idempotent({"body": {
            "name": "Бас бухгалтер", "public_key": base64.b64encode(public_key).decode()}})),
        *[("GET", f"{provider}/{document}", provider_act) for document in documents],
        ("POST", f"{officer}/approve", _idempotent(act)),
        ("POST", f"{officer}/pay", _idempotent(act)),
        ("GET", f"{officer}/payout", act),
        ("POST", f"{officer}/reject", _idempotent({"path_parameters": {"act_number": live.rejectable},
                                                   "body": {"reason": "повтор"}})),
        ("POST", f"{settlement}/disallowances", _idempotent({"path_parameters": programme, "body": {
            "redemption_ids": [str(live.rejectable_redemption)], "reason": "ученик отсутствовал"}})),
        ("POST", "/v1/treasury/settlement/payment-orders/{order_number}/return", _idempotent({
            "path_parameters": {"order_number": live.returned_order}, "body": {"reason": "счёт закрыт"}})),
        ("POST", f"{officer}/repay", _idempotent({"path_parameters": {"act_number": live.returned_act}})),
        ("GET", "/v1/providers/{provider_id}/payouts", {}),
        ("GET", f"{settlement}/periods/{{period_start}}/reconciliation", {"path_parameters": period}),
        ("GET", f"{settlement}/periods/{{period_start}}/reconciliation",
         {"path_parameters": period, "query": {"format": "csv", "table": "differences"}}),
        ("GET", f"{settlement}/periods/{{period_start}}/reconciliation",
         {"path_parameters": period, "headers": {"Accept": "text/csv"}}),
    ]  # fmt: skip


def _idempotent(fields: dict[str, Any]) -> dict[str, Any]:
    return fields | {"headers": {"Idempotency-Key": str(new_id())}}
