"""Eligibility lists: who gets a voucher, for how much. Read from CSV (a header line, then one row per
person) or JSON lines (one object per line); each row is checked on its own, and a bad row is rejected
with its line number and the rule it broke while the good rows go on to be issued.

Columns (CSV header names; JSON keys):

    iin          the holder's 12-digit IIN (check digit, century digit and birth date verified)
    entitlement  an amount in tiyn ("300000"), or a quantity the policy prices: "uses:20" (20 × the set
                 price per use, e.g. school meals) or "units:150" (150 × the price per unit, e.g. m³ of gas,
                 and units_max defaults to 150)
    units_max    optional: most units the voucher may pay for (unit-priced policies only)
    items        optional: prescription items "CODE:QTY;CODE:QTY" (JSON: [["CODE", QTY], ...]); required
                 exactly when the policy requires items
    region       optional: draw from this region's sub-fund instead of the programme fund
    key          optional: tells apart several entitlements of one holder in one list (a prescription
                 number, a month); without it a holder may appear once

Each voucher's id is derived from the programme, the salted holder hash and the entitlement key (`key`,
else the entitlement as written), so a list issued twice issues nothing twice. The salted hash, not the
IIN, goes into the id: voucher ids are public, and an id derived from a bare IIN could be reversed by
trying every IIN.

This module is pure: no database. `treasury.issuance_jobs` runs the rows through the ledger.
"""

import csv
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TextIO

from ledger.identity import IdentityFormatError, iin_holder_hash, mask_iin, validate_iin
from ledger.ids import derived_id
from ledger.limits import AMOUNT_TIYN_MAX
from ledger.vouchers.issuance_orders import (
    ITEM_CODE_PATTERN,
    ITEM_QUANTITY_MAX,
    ITEMS_PER_VOUCHER_MAX,
    VoucherOrder,
)
from ledger.vouchers.policy import UNITS_MAX, Policy
from treasury.errors import Refused

VOUCHER_NAMESPACE: Final = uuid.UUID("5e8a1c2b-7d3f-4a6e-9b0c-1d2e3f4a5b6c")
COLUMNS: Final = ("iin", "entitlement", "units_max", "items", "region", "key")
REQUIRED_COLUMNS: Final = ("iin", "entitlement")
KEY_PATTERN: Final = re.compile(r"^[\w.:/-]{1,64}$")
_QUANTITY: Final = re.compile(r"^(uses|units):([0-9]{1,15})$")
_DIGITS: Final = re.compile(r"^[0-9]{1,19}$")


@dataclass(frozen=True, slots=True)
class ListRow:
    """One row as written. `line` is its line in the file (a CSV header is line 1). `malformed` says why
    the row could not be read at all (bad JSON, wrong number of CSV fields)."""

    line: int
    iin: str
    entitlement: object
    units_max: object = None
    items: object = None
    region: object = None
    key: object = None
    malformed: str = ""


@dataclass(frozen=True, slots=True)
class RowRejection:
    line: int
    reason: str
    message: str
    holder: str  # the IIN masked to its last four digits


@dataclass(frozen=True, slots=True)
class IssueTerms:
    """What rows are checked against: the programme, its policy in force, its sub-funds by region, and the
    secret salt of holder hashes (from settings; never stored with the data)."""

    programme_id: uuid.UUID
    policy: Policy
    sub_funds: dict[str, uuid.UUID]
    holder_salt: bytes


def read_list(path: Path) -> Iterator[ListRow]:
    """The rows of a CSV or JSON-lines file (JSON lines when the name ends .jsonl/.ndjson or the first
    character is `{`). A CSV header naming an unknown column, or missing a required one, refuses the file."""
    with path.open("r", encoding="utf-8-sig", newline="") as handle:
        first = handle.read(1)
        handle.seek(0)
        if path.suffix.lower() in (".jsonl", ".ndjson") or first == "{":
            yield from _json_rows(handle)
        else:
            yield from _csv_rows(handle)


def duplicate_lines(rows: Iterator[ListRow]) -> tuple[int, dict[int, int]]:
    """(row count, {line of a repeated holder: line where that holder first appeared}). A holder repeats
    when the same IIN comes again with the same `key` (or again without one)."""
    first_seen: dict[object, int] = {}
    repeats: dict[int, int] = {}
    count = 0
    for row in rows:
        count += 1
        if row.malformed:
            continue
        iin = str(row.iin).strip()
        holder: object = int(iin) if len(iin) == 12 and _DIGITS.match(iin) else iin  # ints: half the memory
        key = "" if row.key is None else str(row.key).strip()
        identity = (holder, key) if key else holder
        seen = first_seen.setdefault(identity, row.line)
        if seen != row.line:
            repeats[row.line] = seen
    return count, repeats


def prepare_row(row: ListRow, terms: IssueTerms, repeats: dict[int, int]) -> VoucherOrder | RowRejection:
    """The voucher order a row asks for, or why it is rejected (the first rule it breaks)."""
    raw_iin = str(row.iin).strip()
    holder = mask_iin(raw_iin)
    if row.malformed:
        return RowRejection(row.line, "row_malformed", row.malformed, holder)
    try:
        iin = validate_iin(raw_iin)
    except IdentityFormatError as error:
        return RowRejection(row.line, error.rule.value, str(error), holder)
    if row.line in repeats:
        first = repeats[row.line]
        return RowRejection(row.line, "duplicate_holder", f"the holder is already on line {first}", holder)
    try:
        amount, units_max, key = _entitlement(row, terms.policy)
        items = _items(row.items, terms.policy)
        fund = _fund(row.region, terms.sub_funds)
    except Refused as refused:
        return RowRejection(row.line, refused.code, refused.message, holder)
    holder_hash = iin_holder_hash(iin, terms.holder_salt)
    voucher_id = derived_id(VOUCHER_NAMESPACE, terms.programme_id, holder_hash.hex(), key)
    return VoucherOrder(voucher_id, terms.programme_id, holder_hash, amount, fund, units_max, items)


def _entitlement(row: ListRow, policy: Policy) -> tuple[int, int | None, str]:
    """(amount in tiyn, units_max, entitlement key)."""
    text = str(row.entitlement).strip() if isinstance(row.entitlement, str | int) else ""
    if isinstance(row.entitlement, bool):
        text = ""
    units_max = _units_max(row.units_max)
    quantity = _QUANTITY.match(text)
    if _DIGITS.match(text):
        amount = int(text)
        text = str(amount)  # "0300000" and 300000 are the same entitlement
    elif quantity is not None:
        count = int(quantity.group(2))
        price = policy.price_per_use_tiyn if quantity.group(1) == "uses" else policy.unit_price_tiyn
        if price is None:
            raise Refused("entitlement_not_priced", f"the policy sets no price for {quantity.group(1)}")
        amount = count * price
        if quantity.group(1) == "units" and units_max is None:
            units_max = count
    else:
        raise Refused("entitlement_invalid", 'an entitlement is tiyn ("300000"), "uses:N" or "units:N"')
    if not 0 < amount <= AMOUNT_TIYN_MAX:
        raise Refused("amount_invalid", f"an entitlement is 1 to {AMOUNT_TIYN_MAX} tiyn")
    if policy.price_per_use_tiyn is not None and amount % policy.price_per_use_tiyn:
        raise Refused("amount_not_whole_uses", f"the amount must be a multiple of the price per use, "
                      f"{policy.price_per_use_tiyn} tiyn")  # fmt: skip
    if units_max is not None and policy.unit_price_tiyn is None:
        raise Refused("units_not_priced", "units_max needs a policy priced per unit")
    key = _key(row.key)
    return amount, units_max, key or text


def _units_max(value: object) -> int | None:
    if value in (None, ""):
        return None
    text = str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
    if not _DIGITS.match(text) or not 0 < int(text) <= UNITS_MAX:
        raise Refused("units_invalid", f"units_max is a whole number from 1 to {UNITS_MAX}")
    return int(text)


def _items(value: object, policy: Policy) -> tuple[tuple[str, int], ...]:
    pairs: list[tuple[object, object]] = []
    if isinstance(value, str) and value.strip():
        for part in (part.strip() for part in value.split(";")):
            code, _, quantity = part.rpartition(":")
            pairs.append((code, quantity))
    elif isinstance(value, list):
        pairs = [
            (item[0], item[1]) if isinstance(item, list) and len(item) == 2 else ("", 0) for item in value
        ]
    elif value not in (None, ""):
        raise Refused("items_invalid", 'items are "CODE:QTY;CODE:QTY"')
    items = tuple((str(code), _quantity(quantity)) for code, quantity in pairs)
    codes = [code for code, _ in items]
    if (
        len(items) > ITEMS_PER_VOUCHER_MAX
        or len(set(codes)) != len(codes)
        or not all(
            ITEM_CODE_PATTERN.match(code) and 0 < quantity <= ITEM_QUANTITY_MAX for code, quantity in items
        )
    ):
        raise Refused("items_invalid", f"at most {ITEMS_PER_VOUCHER_MAX} distinct item codes, each with a "
                      f"quantity from 1 to {ITEM_QUANTITY_MAX}")  # fmt: skip
    if bool(items) != policy.items_required:
        if policy.items_required:
            raise Refused("items_required", "this programme's vouchers name prescription items")
        raise Refused("items_not_allowed", "this programme's vouchers carry no prescription items")
    return items


def _quantity(value: object) -> int:
    text = str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
    return int(text) if _DIGITS.match(text) else 0


def _fund(region: object, sub_funds: dict[str, uuid.UUID]) -> uuid.UUID | None:
    if region in (None, ""):
        return None
    fund = sub_funds.get(str(region).strip())
    if fund is None:
        raise Refused("region_unknown", "the programme has no sub-fund for this region")
    return fund


def _key(value: object) -> str:
    if value in (None, ""):
        return ""
    text = str(value).strip()
    if not KEY_PATTERN.match(text):
        raise Refused("key_invalid", "a key is 1 to 64 letters, digits and . : / - _")
    return f"key={text}"


def _csv_rows(handle: TextIO) -> Iterator[ListRow]:
    reader = csv.reader(handle)
    header = [name.strip().lower() for name in next(reader, [])]
    unknown = sorted(set(header) - set(COLUMNS))
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if unknown or missing or len(set(header)) != len(header):
        raise Refused(
            "list_columns_invalid",
            f"the header names columns from {', '.join(COLUMNS)}, each once, iin and entitlement required; "
            f"unknown: {unknown}, missing: {missing}",
        )
    positions = [header.index(name) if name in header else -1 for name in COLUMNS]
    width = len(header)
    for fields in reader:
        line = reader.line_num
        if not fields:
            continue
        if len(fields) != width:
            yield ListRow(line, fields[0], "", malformed=f"{len(fields)} fields where the header has {width}")
            continue
        values = [fields[position] if position >= 0 else None for position in positions]
        yield ListRow(line, *values)  # type: ignore[arg-type]


def _json_rows(handle: TextIO) -> Iterator[ListRow]:
    for line, text in enumerate(handle, 1):
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except ValueError:
            yield ListRow(line, "", "", malformed="the line is not JSON")
            continue
        if not isinstance(value, dict) or not set(value) <= set(COLUMNS):
            yield ListRow(line, "", "", malformed=f"a line is an object with the keys {', '.join(COLUMNS)}")
            continue
        iin = value.get("iin")
        iin_text = iin if isinstance(iin, str) else ""
        yield ListRow(line, iin_text, value.get("entitlement"), value.get("units_max"), value.get("items"),
                      value.get("region"), value.get("key"))  # fmt: skip
