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
    BindParameter,
    ColumnClause,
    ColumnElement,
    FromClause,
    Integer,
    Row,
    Select,
    and_,
    bindparam,
    func,
    literal_column,
    or_,
    select,
)

from durafn.errors import BadRequestError
from durafn.models import InstanceQuery, OrchestrationRuntimeStatus
from durafn.store.base import CONTROL_EVENT_TYPES, InstanceRecord
from durafn.store.schema import UtcDateTime, inbox, instances

FINAL_STATUSES = frozenset(
    {
        OrchestrationRuntimeStatus.Completed,
        OrchestrationRuntimeStatus.Failed,
        OrchestrationRuntimeStatus.Terminated,
    }
)
"""Statuses that end an execution: the instance may be replaced or purged, takes no messages."""
FINAL_VALUES = sorted(s.value for s in FINAL_STATUSES)
"""FINAL_STATUSES as stored."""

# SQL literals, not bound lists: statements built once are then run with executemany too.
_FINAL_SQL: list[ColumnClause[Any]] = [literal_column(f"'{v}'") for v in FINAL_VALUES]
IS_FINAL = instances.c.status.in_(_FINAL_SQL)
IS_LIVE = instances.c.status.not_in(_FINAL_SQL)

# Parameters of the statements built once and run many times.
NOW: BindParameter[datetime] = bindparam("b_now", type_=UtcDateTime())
ID: BindParameter[Any] = bindparam("b_iid")
"""One row's id (an instance id, or an activity id)."""
IDS: BindParameter[Any] = bindparam("b_ids", expanding=True)
"""A list of ids for ``IN``."""


def to_record(row: Row[Any]) -> InstanceRecord:
    """Build an InstanceRecord from a row holding the instances table's columns."""
    m = row._mapping
    return InstanceRecord(
        instance_id=m["instance_id"],
        name=m["name"],
        execution_id=m["execution_id"],
        status=OrchestrationRuntimeStatus(m["status"]),
        input=m["input"],
        output=m["output"],
        custom_status=m["custom_status"],
        created_time=m["created_time"],
        last_updated_time=m["last_updated_time"],
        parent_instance_id=m["parent_instance_id"],
        parent_task_id=m["parent_task_id"],
        history_length=m["history_length"],
    )


def lease_free(table: FromClause) -> ColumnElement[bool]:
    """No live lease on the row: none taken, or taken until NOW or earlier."""
    return or_(table.c.lease_until.is_(None), table.c.lease_until <= NOW)


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
    stmt = select(instances).where(*where).order_by(c.created_time, c.instance_id)
    if query.top is not None:
        if query.top < 1:
            raise BadRequestError(f"top must be 1 or more instances per page, not {query.top}")
        stmt = stmt.limit(query.top + 1)
    return stmt


def page_result(
    query: InstanceQuery, rows: Sequence[Row[Any]]
) -> tuple[list[InstanceRecord], str | None]:
    """Return the records of a page fetched with :func:`page_select`, and the next token."""
    records = [to_record(row) for row in rows]
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


def claimable_instances() -> Select[Any]:
    """Ids of up to ``b_window`` unleased instances with a message to process at NOW.

    Oldest message first. A message counts when it is visible, belongs to the current execution
    (or to none), and, for a Suspended instance, is a control message.
    """
    owner = instances.alias("owner")
    eligible = and_(
        inbox.c.visible_at <= NOW,
        or_(inbox.c.execution_id.is_(None), inbox.c.execution_id == owner.c.execution_id),
        or_(
            owner.c.status != literal_column(f"'{OrchestrationRuntimeStatus.Suspended.value}'"),
            inbox.c.event_type.in_([literal_column(f"'{t}'") for t in sorted(CONTROL_EVENT_TYPES)]),
        ),
        lease_free(owner),
    )
    return (
        select(inbox.c.instance_id)
        .join_from(inbox, owner, inbox.c.instance_id == owner.c.instance_id)
        .where(eligible)
        .group_by(inbox.c.instance_id)
        .order_by(func.min(inbox.c.id))
        .limit(bindparam("b_window", type_=Integer()))
    )
