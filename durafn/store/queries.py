"""Statements that select instances, shared by SqlStore: filters, keyset pages, claim candidates.

Pure statement building and row conversion: nothing here touches a connection.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    and_,
    func,
    or_,
    select,
)

from durafn.errors import BadRequestError
from durafn.models import FINAL_STATUSES, InstanceQuery
from durafn.store.base import InstanceRecord
from durafn.store.schema import instances
from durafn.store.statements import INSTANCE_FIELDS, instance_record

IS_FINAL = instances.c.status.in_(sorted(s.value for s in FINAL_STATUSES))


def _as_read(value: Any) -> Any:
    """A time column as SQLAlchemy read it: UtcDateTime already made it an aware datetime."""
    return value


def filters(query: InstanceQuery) -> list[ColumnElement[bool]]:
    """Return the WHERE conditions of ``query``'s status, created-time and prefix filters."""
    c = instances.c
    where: list[ColumnElement[bool]] = []
    if query.runtime_status is not None:
        where.append(c.status.in_(sorted(s.value for s in query.runtime_status)))
    if query.created_time_from is not None:
        where.append(c.created_time >= query.created_time_from)
    if query.created_time_to is not None:
        where.append(c.created_time <= query.created_time_to)
    if query.instance_id_prefix:
        prefix = query.instance_id_prefix
        # Not LIKE: SQLite's LIKE ignores case and both would need escaping of % and _.
        where.append(func.substr(c.instance_id, 1, len(prefix)) == prefix)
    return where


def page_select(query: InstanceQuery) -> Select[Any]:
    """Select one page of ``query``, plus one row to tell whether more pages follow.

    Raises BadRequestError for a malformed continuation token or a ``top`` below 1.
    """
    c = instances.c
    where = filters(query)
    if query.continuation_token is not None:
        created, instance_id = decode_token(query.continuation_token)
        where.append(
            or_(
                c.created_time > created,
                and_(c.created_time == created, c.instance_id > instance_id),
            )
        )
    columns = [c[name] for name in INSTANCE_FIELDS]
    stmt = select(*columns).where(*where).order_by(c.created_time, c.instance_id)
    if query.top is not None:
        if query.top < 1:
            raise BadRequestError(f"top must be 1 or more instances per page, not {query.top}")
        stmt = stmt.limit(query.top + 1)
    return stmt


def page_result(
    query: InstanceQuery, rows: Sequence[Row[Any]]
) -> tuple[list[InstanceRecord], str | None]:
    """Return the records of a page fetched with :func:`page_select`, and the next token."""
    records = [instance_record(row, _as_read) for row in rows]
    if query.top is None or len(records) <= query.top:
        return records, None
    del records[query.top :]
    return records, encode_token(records[-1])


def encode_token(last: InstanceRecord) -> str:
    """Return an opaque continuation token: the keyset position after ``last``."""
    raw = json.dumps([last.created_time.isoformat(), last.instance_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode("utf-8")).decode("ascii")


def decode_token(token: str) -> tuple[datetime, str]:
    """Inverse of :func:`encode_token`; BadRequestError when ``token`` is not one."""
    try:
        value = json.loads(base64.urlsafe_b64decode(token.encode("ascii")).decode("utf-8"))
        created_text, instance_id = value
        if not isinstance(created_text, str) or not isinstance(instance_id, str):
            raise ValueError("token fields are not strings")
        created = datetime.fromisoformat(created_text)
        if created.tzinfo is None:
            raise ValueError("token time has no offset")
    except (ValueError, TypeError, RecursionError):
        shown = token if len(token) <= 40 else token[:40] + "..."
        raise BadRequestError(
            f"malformed continuation token {shown!r}; pass the token the previous page returned "
            "(x-ms-continuation-token) unchanged, or none for the first page"
        ) from None
    return created, instance_id
