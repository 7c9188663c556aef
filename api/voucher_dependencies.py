"""What voucher routes receive: the `VoucherLedger` and the holder salt, built once in `create_app` and kept
on the app's state (see `api.voucher_secrets` for where their keys come from)."""

from typing import Annotated

from fastapi import Depends, Request

from api.redemption_envelopes import TerminalOwners
from ledger.vouchers.coalescer import RedemptionCoalescer
from ledger.vouchers.service import VoucherLedger


async def get_voucher_ledger(request: Request) -> VoucherLedger:
    vouchers: VoucherLedger = request.app.state.vouchers
    return vouchers


async def get_holder_salt(request: Request) -> bytes:
    salt: bytes = request.app.state.holder_salt
    return salt


async def get_redemption_coalescer(request: Request) -> RedemptionCoalescer:
    coalescer: RedemptionCoalescer = request.app.state.redemption_coalescer
    return coalescer


async def get_terminal_owners(request: Request) -> TerminalOwners:
    owners: TerminalOwners = request.app.state.terminal_owners
    return owners


VoucherLedgerDep = Annotated[VoucherLedger, Depends(get_voucher_ledger)]
TerminalOwnersDep = Annotated[TerminalOwners, Depends(get_terminal_owners)]
RedemptionCoalescerDep = Annotated[RedemptionCoalescer, Depends(get_redemption_coalescer)]
HolderSaltDep = Annotated[bytes, Depends(get_holder_salt)]
