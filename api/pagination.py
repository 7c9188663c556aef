"""Cursor pagination for list routes: an opaque cursor, a bounded `limit`, and the link to the next page.

A route takes `PageParams`, fetches `page.fetch_limit` rows after `page.after(...)` in a stable order, and
answers `page.of(items, position_of)`::

    @router.get("/redemptions", response_model=Page[RedemptionView])
    def list_redemptions(caller: ProviderPrincipal, page: PageParams, unit_of_work: UnitOfWorkDep):
        rows = unit_of_work.read(lambda c:
             redemptions(c, caller.provider_id, page.after("id"), page.fetch_limit))
        return page.of([RedemptionView.of(r) for r in rows], lambda view: {"id": str(view.id)})

The cursor is base64url of a small JSON object naming where the last page ended (the route chooses its
fields: an id, a timestamp and an id, ...). It is opaque to clients but not secret and not signed: it only
says where to continue, and every query still applies the caller's own filter (its provider, its role),
so a forged cursor reads nothing the caller could not read anyway.
"""

import base64
import binascii
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Final, Generic, TypeVar
from urllib.parse import urlencode

from fastapi import Depends, Query, Request
from pydantic import BaseModel, Field

from api.problems import Problem

PAGE_ITEMS_DEFAULT: Final = 50
PAGE_ITEMS_MAX: Final = 500
CURSOR_CHARS_MAX: Final = 512
ItemT = TypeVar("ItemT")
Position = Mapping[str, str | int]


class Page(BaseModel, Generic[ItemT]):
    """One page of a list, in a stable order."""

    items: list[ItemT]
    next: str | None = Field(description="The next page's link (same query, new cursor); null on the last")


def encode_cursor(position: Position) -> str:
    text = json.dumps(dict(position), separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(text.encode()).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> dict[str, str | int]:
    """The position a cursor names; a 400 problem for anything this API did not make."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        position = json.loads(raw)
    except (binascii.Error, ValueError):
        position = None
    if not isinstance(position, dict) or not all(
        isinstance(value, str | int) and not isinstance(value, bool) for value in position.values()
    ):
        raise Problem(400, "cursor_invalid", "This cursor was not made by this API", "start without one")
    return position


@dataclass(frozen=True, slots=True)
class PageRequest:
    position: Mapping[str, str | int] | None
    limit: int
    path: str
    query: Mapping[str, str]

    @property
    def fetch_limit(self) -> int:
        """Rows to fetch: one more than the page, to learn whether a next page exists."""
        return self.limit + 1

    def after(self, field: str) -> str | int | None:
        """Where the previous page ended, by the field the route stored; None on the first page."""
        return None if self.position is None else self.position.get(field)

    def of(self, items: Sequence[ItemT], position_of: Callable[[ItemT], Position]) -> Page[ItemT]:
        """The page from up to `fetch_limit` items, with the next link when there are more."""
        if len(items) <= self.limit:
            return Page(items=list(items), next=None)
        shown = list(items[: self.limit])
        query = dict(self.query) | {"cursor": encode_cursor(position_of(shown[-1])), "limit": str(self.limit)}
        return Page(items=shown, next=f"{self.path}?{urlencode(query)}")


async def page_request(
    request: Request,
    cursor: Annotated[
        str | None,
        Query(max_length=CURSOR_CHARS_MAX, description="From the previous page's `next`; omit for the first"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=PAGE_ITEMS_MAX, description="Items per page")] = PAGE_ITEMS_DEFAULT,
) -> PageRequest:
    position = decode_cursor(cursor) if cursor is not None else None
    others = {k: v for k, v in request.query_params.items() if k not in ("cursor", "limit")}
    return PageRequest(position, limit, request.url.path, others)


PageParams = Annotated[PageRequest, Depends(page_request)]
