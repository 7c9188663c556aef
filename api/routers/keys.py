"""The issuer key set, public: what an offline terminal caches to check voucher tokens (PASETO v4.public)
and redemption receipts without asking the ledger. No credential is needed; the answer is the same for
everyone, so shared caches may keep it a few minutes (ETag and Cache-Control)."""

import datetime as dt
from typing import Any, Final

from fastapi import APIRouter, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from api.dependencies import UnitOfWorkDep
from api.etags import etag_of, if_none_match
from api.openapi_examples import UNAVAILABLE, problem_examples
from api.schemas.common import at
from ledger.vouchers.keys import IssuerKey, load_issuer_keys
from ledger.vouchers.paseto import encode_k4_public

router = APIRouter(prefix="/v1/keys", tags=["keys"], responses=problem_examples({503: [UNAVAILABLE]}))
# Terminals refresh at least this often; a revocation reaches them within it.
ISSUER_KEYS_MAX_AGE_S: Final = 300


class IssuerKeyView(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "key_id": "k4.pid.yh4-bJYjOYAG6CWy0zsfPmpKylxS7uAWrxqVmBuCLZ2V",
                    "public_key": "k4.public.oOv1Y0rNl6eJjXe7xT8siL9Gi3T-a_BmRH0KZRp8nLs",
                    "issue_until": "2027-11-30T00:00:00Z",
                    "redeem_until": "2028-11-30T00:00:00Z",
                    "revoked_at": None,
                }
            ]
        }
    )
    key_id: str = Field(description="PASERK k4.pid: what a token's footer `kid` names")
    public_key: str = Field(description="PASERK k4.public")
    issue_until: dt.datetime = Field(description="Tokens signed later than this are refused")
    redeem_until: dt.datetime = Field(description="Its tokens are accepted until then")
    revoked_at: dt.datetime | None = Field(description="From then on nothing it signed is accepted")

    @classmethod
    def of(cls, key: IssuerKey) -> "IssuerKeyView":
        return cls(
            key_id=key.key_id,
            public_key=encode_k4_public(key.public_key),
            issue_until=at(key.issue_until),
            redeem_until=at(key.redeem_until),
            revoked_at=at(key.revoked_at) if key.revoked_at is not None else None,
        )


class IssuerKeySetView(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "keys": [
                        {
                            "key_id": "k4.pid.yh4-bJYjOYAG6CWy0zsfPmpKylxS7uAWrxqVmBuCLZ2V",
                            "public_key": "k4.public.oOv1Y0rNl6eJjXe7xT8siL9Gi3T-a_BmRH0KZRp8nLs",
                            "issue_until": "2027-11-30T00:00:00Z",
                            "redeem_until": "2028-11-30T00:00:00Z",
                            "revoked_at": None,
                        }
                    ]
                }
            ]
        }
    )
    keys: list[IssuerKeyView]


NOT_MODIFIED: Final[dict[int | str, dict[str, Any]]] = {304: {"description": "Not modified"}}


@router.get(
    "/issuers",
    response_model=IssuerKeySetView,
    summary="The issuer key set (public, cacheable)",
    responses=NOT_MODIFIED,
)
def read_issuer_keys(request: Request, unit_of_work: UnitOfWorkDep) -> Response:
    keys = unit_of_work.read(load_issuer_keys)
    view = IssuerKeySetView(keys=[IssuerKeyView.of(keys[key_id]) for key_id in sorted(keys)])
    rendered = JSONResponse(jsonable_encoder(view))
    validators = {
        "ETag": etag_of(bytes(rendered.body)),
        "Cache-Control": f"public, max-age={ISSUER_KEYS_MAX_AGE_S}",
    }
    if if_none_match(request.headers.get("if-none-match"), validators["ETag"]):
        return Response(status_code=304, headers=validators)
    rendered.headers.update(validators)
    return rendered
