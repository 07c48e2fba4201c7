"""Querysets compiled to SQL once per shape, then run again with new values.

Why: on the review API's hot path Django spends more CPU building and compiling the queue's
queryset (its score join, the eligibility subqueries, the lease columns) than PostgreSQL
spends running it: a profile under load put ~55% of the server's Python time there. The
shape repeats from call to call; only the reviewer and the clock change. So the queryset
is built once with marker values in their place, compiled, and later runs put the real
values in the marker parameters' positions.

The caller's key must hold everything else the SQL depends on (project, settings, model
version, filters, limit). A statement whose markers do not all come out as parameters (an
expression that inlines its value) is not kept: the caller runs it the ordinary way.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import connection
from django.db.models import QuerySet

# Values no row or clock can hold: a negative id, a microsecond in 1901.
MARKERS: dict[str, Any] = {
    "user": -7_340_031_337,
    "now": datetime(1901, 2, 3, 4, 5, 6, 789_012, tzinfo=UTC),
}
KEEP = 256  # statements kept per process (a queue x filters x count each)


@dataclass(frozen=True)
class Statement:
    """Compiled SQL and its parameters, with the positions the markers took."""

    sql: str
    params: tuple[Any, ...]
    slots: tuple[tuple[int, str], ...]  # (position in params, marker name)

    def rows(self, **values: Any) -> list[tuple[Any, ...]]:
        """Run with ``values`` (one per marker name) in the markers' places."""
        params = list(self.params)
        for position, name in self.slots:
            params[position] = values[name]
        with connection.cursor() as cursor:
            cursor.execute(self.sql, params)
            rows: list[tuple[Any, ...]] = cursor.fetchall()
        return rows


_kept: OrderedDict[Hashable, Statement | None] = OrderedDict()
_lock = threading.Lock()


def compile_once(key: Hashable, build: Callable[..., QuerySet[Any]]) -> Statement | None:
    """The statement of ``build(**MARKERS)`` (a values_list queryset of plain columns),
    compiled on the first call for ``key``; None if it cannot be reused that way."""
    with _lock:
        if key in _kept:
            _kept.move_to_end(key)
            return _kept[key]
    queryset = build(**MARKERS)
    sql, params = queryset.query.get_compiler(using=queryset.db).as_sql()
    slots = tuple((i, name) for i, value in enumerate(params)
                  for name, marker in MARKERS.items()
                  if type(value) is type(marker) and value == marker)
    found = {name for _, name in slots}
    statement = Statement(sql, tuple(params), slots) if found == set(MARKERS) else None
    with _lock:
        _kept[key] = statement
        while len(_kept) > KEEP:
            _kept.popitem(last=False)
    return statement
