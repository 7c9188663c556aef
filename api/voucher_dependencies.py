"""What voucher routes receive: the `VoucherLedger` and the holder salt, built once in `create_app` and kept
on the app's state (see `api.voucher_secrets` for where their keys come from)."""

from typing import Annotated

from fastapi import Depends, Request

from ledger.vouchers.service import VoucherLedger


async def get_voucher_ledger(request: Request) -> VoucherLedger:
    vouchers: VoucherLedger = request.app.state.vouchers
    return vouchers


async def get_holder_salt(request: Request) -> bytes:
    salt: bytes = request.app.state.holder_salt
    return salt


VoucherLedgerDep = Annotated[VoucherLedger, Depends(get_voucher_ledger)]
HolderSaltDep = Annotated[bytes, Depends(get_holder_salt)]
