"""The voucher's vocabulary: its states and the steps between them, provider categories and states,
redemption phases. Values are stored in the database and the audit log: stable, never reused."""

from enum import IntEnum
from typing import Final


class VoucherState(IntEnum):
    OFFERED = 1  # issued; the value is reserved (a pending transfer) until the citizen answers
    ACCEPTED = 2  # the citizen agreed; the value is the voucher's, but it waits for activation
    DECLINED = 3  # the citizen said no; the reservation was voided back to the fund
    ACTIVE = 4  # may be redeemed
    SUSPENDED = 5  # held (fraud check, appeal, death of the holder); resumable; not redeemable
    REDEEMED = 6  # nothing left to spend
    EXPIRED = 7  # past its expiry (or the offer lapsed); what was left went back to the fund
    REVOKED = 8  # withdrawn by the programme; what was left went back to the fund


class TransitionAction(IntEnum):
    ACCEPT = 1
    DECLINE = 2
    ACTIVATE = 3
    SUSPEND = 4
    RESUME = 5
    REVOKE = 6
    EXPIRE = 7


S = VoucherState
# Which state each action may start from, and where it leads. Anything else is an illegal transition.
TRANSITIONS: Final[dict[TransitionAction, tuple[frozenset[VoucherState], VoucherState]]] = {
    TransitionAction.ACCEPT: (frozenset({S.OFFERED}), S.ACCEPTED),
    TransitionAction.DECLINE: (frozenset({S.OFFERED}), S.DECLINED),
    TransitionAction.ACTIVATE: (frozenset({S.ACCEPTED}), S.ACTIVE),
    TransitionAction.SUSPEND: (frozenset({S.ACCEPTED, S.ACTIVE}), S.SUSPENDED),
    # Resume returns a suspended voucher to ACTIVE; one suspended before activation must still be activated,
    # which is decided by the voucher's history (see lifecycle.resume_target).
    TransitionAction.RESUME: (frozenset({S.SUSPENDED}), S.ACTIVE),
    TransitionAction.REVOKE: (frozenset({S.OFFERED, S.ACCEPTED, S.ACTIVE, S.SUSPENDED}), S.REVOKED),
    TransitionAction.EXPIRE: (frozenset({S.OFFERED, S.ACCEPTED, S.ACTIVE, S.SUSPENDED}), S.EXPIRED),
}
# States from which nothing moves any more (value has gone back or been spent).
FINAL_STATES: Final = frozenset({S.DECLINED, S.REDEEMED, S.EXPIRED, S.REVOKED})


class ProviderCategory(IntEnum):
    """What kind of service a provider renders; a programme's policy names the categories it pays."""

    CANTEEN = 1
    PHARMACY = 2
    GAS_UTILITY = 3
    CLUB = 4
    SHOP = 5


PROVIDER_CATEGORY_NAMES: Final = {member.name.lower(): member for member in ProviderCategory}


class ProviderState(IntEnum):
    """A provider's standing in one programme. Only ACTIVE may redeem; a suspended provider's customers
    keep their vouchers and spend them elsewhere."""

    PENDING = 1
    ACTIVE = 2
    SUSPENDED = 3
    WITHDRAWN = 4


class RedemptionPhase(IntEnum):
    SINGLE = 1  # value moves at once
    RESERVE = 2  # two-phase: reserve at scan (a pending transfer)
    POST = 3  # two-phase: post at hand-over (full or partial)
    VOID = 4  # two-phase: cancel, the reservation returns to the voucher
