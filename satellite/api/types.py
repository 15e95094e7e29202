"""The wire vocabulary every operation's request and answer types are built from.

Field names follow the SSM On-Prem API toolkit as public automation calls it (camelCase).
HTTP routes and the OpenAPI document are generated from the operations' own request and
answer types (``satellite.api.operation``), so what the document says is what is decoded.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from satellite.domain.paging import ALL

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[^/\x00-\x1f]+$")]
Description = Annotated[str, msgspec.Meta(max_length=500)]
# Every list that pages takes the same limit: -1 (the toolkit's "all") or a page size,
# and an offset counting the records skipped in the list's order (domain.paging).
Limit = Annotated[int, msgspec.Meta(ge=ALL, le=100_000)]
# PostgreSQL's OFFSET is a bigint: a larger one is refused here, naming the parameter.
Offset = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
# What the toolkit answers a change that was made.
Success = Literal["SUCCESS"]
ExportFlag = Literal["Allowed", "Not Allowed"]
# A flag of the toolkit's answers: a string, so that automation comparing it with "true"
# matches (a JSON boolean does not).
Flag = Literal["true", "false"]
Domain = Annotated[str, msgspec.Meta(max_length=253)]  # checked by domain.names.check_domain
Secret = Annotated[str, msgspec.Meta(min_length=1, max_length=512)]


class Request(msgspec.Struct, forbid_unknown_fields=True, rename="camel", kw_only=True):
    """Base of every request body: unknown fields are refused."""


class Response(msgspec.Struct, rename="camel", kw_only=True, omit_defaults=False):
    """Base of every response body."""


class Empty(Response):
    pass


class StatusResponse(Response):
    status: Success = "SUCCESS"
    message: str = ""
