"""Who an act is between: the programme's paying authority (customer, buyer) and the provider (contractor,
seller), read from `programmes`, the ledger's `providers` (name, BIN) and `provider_profiles` (address,
bank account, contract). A provider profile is written here too: it is what a returned payment's fix
changes (a corrected IBAN), and what acts and payment orders print.
"""

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any, Final

import psycopg

from ledger.audit.events import json_event
from ledger.audit.inbox import append_events
from ledger.identity import IdentityFormatError, validate_iban
from ledger.timestamps import reserve_timestamps
from treasury.documents import BankDetails, ContractReference, DocumentError, Party
from treasury.documents.rules import DOCUMENT_NUMBER_CHARS_MAX, require_text
from treasury.errors import RefusalKind, Refused
from treasury.programmes import Programme


@dataclass(frozen=True, slots=True)
class ProviderProfile:
    """A provider's paperwork: where it is, where it is paid, and the contract it serves under."""

    provider_id: uuid.UUID
    address: str
    iban: str
    bank_name: str
    bic: str
    contract_number: str
    contract_date: dt.date


@dataclass(frozen=True, slots=True)
class ProviderParty:
    provider_id: uuid.UUID
    party: Party
    contract: ContractReference


def record_provider_profile(connection: psycopg.Connection[Any], profile: ProviderProfile) -> ProviderProfile:
    """Create or replace the provider's profile (checked as a document party would be: BIN-less fields
    here, the IBAN's mod-97 and the BIC's shape). The audit log records every version."""
    try:
        bank = BankDetails(profile.iban, profile.bank_name, profile.bic)
        require_text(profile.contract_number, "the contract number", DOCUMENT_NUMBER_CHARS_MAX)
    except DocumentError as error:
        raise Refused(f"profile_{error.rule.value}", str(error)) from None
    if not profile.address.strip() or len(profile.address) > 500:
        raise Refused("profile_address_invalid", "the address must be 1 to 500 characters")
    if connection.execute("SELECT 1 FROM providers WHERE id = %s", (profile.provider_id,)).fetchone() is None:
        raise Refused("provider_not_found", str(profile.provider_id), RefusalKind.NOT_FOUND)
    timestamp = reserve_timestamps(connection)
    fields = (
        profile.address,
        bank.iban,
        bank.bank_name,
        bank.bic,
        profile.contract_number,
        profile.contract_date,
    )
    connection.execute(
        """INSERT INTO provider_profiles (provider_id, address, iban, bank_name, bic, contract_number,
                                          contract_date, "timestamp")
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (provider_id) DO UPDATE SET address = excluded.address, iban = excluded.iban,
               bank_name = excluded.bank_name, bic = excluded.bic, contract_number = excluded.contract_number,
               contract_date = excluded.contract_date, "timestamp" = excluded.timestamp""",
        (profile.provider_id, *fields, timestamp),
    )
    append_events(
        connection,
        [
            json_event(
                "provider_profile_recorded",
                {
                    "provider": str(profile.provider_id),
                    "address": profile.address,
                    "iban": bank.iban,
                    "bank_name": bank.bank_name,
                    "bic": bank.bic,
                    "contract_number": profile.contract_number,
                    "contract_date": profile.contract_date.isoformat(),
                },
            )
        ],
    )
    return ProviderProfile(
        profile.provider_id,
        profile.address,
        bank.iban,
        bank.bank_name,
        bank.bic,
        profile.contract_number,
        profile.contract_date,
    )


def customer_party(programme: Programme) -> Party:
    """The paying authority as printed on acts (customer) and invoices (buyer)."""
    customer = programme.draft.customer
    try:
        return Party(
            customer.name,
            customer.bin,
            customer.address,
            BankDetails(customer.iban, customer.bank_name, customer.bic),
        )
    except DocumentError as error:
        raise Refused(f"customer_{error.rule.value}", str(error)) from None


_PROVIDER: Final = """
SELECT p.name, p.bin, f.address, f.iban, f.bank_name, f.bic, f.contract_number, f.contract_date
  FROM providers p LEFT JOIN provider_profiles f ON f.provider_id = p.id
 WHERE p.id = %s
"""


def provider_party(
    connection: psycopg.Connection[Any], programme: Programme, provider_id: uuid.UUID
) -> ProviderParty:
    """The provider as contractor, with the contract it serves the programme under. Refused (with the
    rule) when its profile is missing or would not make a valid document."""
    row = connection.execute(_PROVIDER, (provider_id,)).fetchone()
    if row is None:
        raise Refused("provider_not_found", str(provider_id), RefusalKind.NOT_FOUND)
    if row[2] is None:
        raise Refused(
            "provider_profile_missing",
            "record the provider's address, bank account and contract before settling",
            RefusalKind.CONFLICT,
        )
    try:
        party = Party(row[0], row[1], row[2], BankDetails(row[3], row[4], row[5]))
        contract = ContractReference(row[6], row[7], programme.draft.name, programme.draft.kbk)
    except DocumentError as error:
        raise Refused(f"provider_{error.rule.value}", str(error)) from None
    return ProviderParty(provider_id, party, contract)


def provider_iban(connection: psycopg.Connection[Any], provider_id: uuid.UUID) -> str:
    """The provider's current IBAN, mod-97 checked (a payout never goes to a malformed account)."""
    row = connection.execute(
        "SELECT iban FROM provider_profiles WHERE provider_id = %s", (provider_id,)
    ).fetchone()
    if row is None:
        raise Refused(
            "provider_profile_missing", "the provider has no bank account on file", RefusalKind.CONFLICT
        )
    try:
        return validate_iban(row[0]).value
    except IdentityFormatError as error:
        raise Refused(
            "iban_invalid", f"the provider's IBAN is invalid: {error}", RefusalKind.CONFLICT
        ) from None
