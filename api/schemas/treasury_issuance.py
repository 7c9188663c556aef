"""Bulk issuance jobs, an officer's steps on one voucher (suspend, resume, revoke), and providers as the
treasury registers, enrols and records them, as the treasury routers send and read them."""

import datetime as dt
import uuid
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.common import PlainText, at
from api.schemas.mobile import CitizenVoucherView
from api.schemas.settlement import OFFICER, PROGRAMME, PROVIDER, RefusalView, examples
from ledger.vouchers.participants import NAME_CHARS_MAX
from ledger.vouchers.states import PROVIDER_CATEGORY_NAMES, ProviderState
from treasury.issuance_jobs import IssuanceJob

JobStateName = Literal["running", "finished"]
CategoryName = Literal["canteen", "pharmacy", "gas_utility", "club", "shop"]
assert set(PROVIDER_CATEGORY_NAMES) == {"canteen", "pharmacy", "gas_utility", "club", "shop"}
ProviderStateName = Literal["pending", "active", "suspended", "withdrawn"]
assert {state.name.lower() for state in ProviderState} == {"pending", "active", "suspended", "withdrawn"}
# Leaves room in the ledger's 500-character reason for the officer's name (up to 200), recorded with it.
STEP_REASON_CHARS_MAX: Final = 280
JOB_EXAMPLE: Final = {
    "id": "0193a0b1-4444-7c3d-8e4f-5a6b7c8d9e0f", "programme_id": PROGRAMME, "source_name": "pupils-2026.csv",
    "source_sha256": "5e" * 32, "rows_total": 20_000, "rows_done": 8_000, "issued": 7_950,
    "already_issued": 0, "rejected": 50, "issued_tiyn": 1_431_000_000, "state": "running",
    "stopped": None, "created_by": OFFICER, "created_at": "2026-08-25T04:00:00.000001Z",
    "updated_at": "2026-08-25T04:00:09.000001Z",
}  # fmt: skip


class IssuanceJobView(BaseModel):
    """A bulk issuance job: one eligibility list for one programme (the same file again is the same job).
    Rows are issued in batches, each one transaction; `rows_done` counts the batches committed."""

    model_config = examples(JOB_EXAMPLE)
    id: uuid.UUID
    programme_id: uuid.UUID
    source_name: str
    source_sha256: str = Field(description="Hex SHA-256 of the uploaded file: what makes it the same job")
    rows_total: int
    rows_done: int
    issued: int = Field(description="Vouchers issued by this job")
    already_issued: int = Field(description="Rows whose voucher existed already (a list issued twice)")
    rejected: int = Field(description="Rows in the rejection report")
    issued_tiyn: int
    state: JobStateName
    stopped: RefusalView | None = Field(
        description="Why this server's last run stopped before the end (upload the same list again to "
        "resume); null while it runs or once finished"
    )
    created_by: str
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, job: IssuanceJob, stopped: RefusalView | None = None) -> "IssuanceJobView":
        return cls(
            id=job.id, programme_id=job.programme_id, source_name=job.source_name,
            source_sha256=job.source_sha256.hex(), rows_total=job.rows_total, rows_done=job.rows_done,
            issued=job.issued, already_issued=job.already_issued, rejected=job.rejected,
            issued_tiyn=job.issued_tiyn, state=job.state.name.lower(),  # type: ignore[arg-type]
            stopped=None if job.finished else stopped, created_by=job.created_by,
            created_at=at(job.created_at), updated_at=at(job.updated_at),
        )  # fmt: skip


class VoucherStepIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reason": "fraud check, case 2026-118"}]}
    )
    reason: PlainText = Field(
        min_length=1,
        max_length=STEP_REASON_CHARS_MAX,
        description="Kept with the step and in the audit log, with the officer's name",
    )


class OfficerVoucherView(CitizenVoucherView):
    """A voucher after an officer's step, with its balances in tiyn (never its holder)."""


PROFILE_EXAMPLE: Final[dict[str, Any]] = {
    "address": "Астана, ул. Кенесары, 40", "iban": "KZ86125KZT5004100100", "bank_name": "АО «Халық Банк»",
    "bic": "HSBKKZKX", "contract_number": "Д-17/2026", "contract_date": "2026-01-15",
}  # fmt: skip


class ProviderIn(BaseModel):
    """A provider to register: its BIN, name and what kind of service it renders. Its id is derived from
    the BIN, so registering the same provider again answers the same id."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"bin": "180440012349", "name": "ТОО «Мектеп асханасы»", "category": "canteen"}]
        },
    )
    bin: PlainText = Field(min_length=1, max_length=20, description="12 digits with its check digit")
    name: PlainText = Field(min_length=1, max_length=NAME_CHARS_MAX)
    category: CategoryName


class ProviderProfileIn(BaseModel):
    """A provider's paperwork: where it is, where it is paid, and the contract it serves under (printed on
    acts, invoices and payment orders). Recording it again replaces it (a corrected IBAN)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [PROFILE_EXAMPLE]})
    address: PlainText = Field(min_length=1, max_length=500)
    iban: PlainText = Field(min_length=1, max_length=40)
    bank_name: PlainText = Field(min_length=1, max_length=300)
    bic: PlainText = Field(min_length=1, max_length=20)
    contract_number: PlainText = Field(min_length=1, max_length=100)
    contract_date: dt.date


class ProviderProfileView(BaseModel):
    model_config = examples(PROFILE_EXAMPLE | {"provider_id": PROVIDER})
    provider_id: uuid.UUID
    address: str
    iban: str
    bank_name: str
    bic: str
    contract_number: str
    contract_date: dt.date


ENROLMENT_EXAMPLE: Final = {
    "programme_id": PROGRAMME, "provider_id": PROVIDER,
    "receivable_account_id": "0193a0b1-5555-7c3d-8e4f-5a6b7c8d9e0f", "state": "active",
}  # fmt: skip


class EnrolmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"provider_id": PROVIDER}]})
    provider_id: uuid.UUID


class EnrolmentView(BaseModel):
    """A provider in one programme: its receivable there (what the state owes it) and its standing."""

    model_config = examples(ENROLMENT_EXAMPLE)
    programme_id: uuid.UUID
    provider_id: uuid.UUID
    receivable_account_id: uuid.UUID
    state: ProviderStateName


class ProviderView(BaseModel):
    model_config = examples(
        {"id": PROVIDER, "bin": "180440012349", "name": "ТОО «Мектеп асханасы»", "category": "canteen",
         "registered_at": "2026-08-23T04:00:00.000001Z",
         "profile": PROFILE_EXAMPLE | {"provider_id": PROVIDER}, "programmes": [ENROLMENT_EXAMPLE]}
    )  # fmt: skip
    id: uuid.UUID
    bin: str
    name: str
    category: CategoryName
    registered_at: dt.datetime
    profile: ProviderProfileView | None = Field(description="Needed before its acts can be drawn up")
    programmes: list[EnrolmentView]
