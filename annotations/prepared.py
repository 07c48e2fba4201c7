"""Querysets compiled to SQL once per shape, then run again with new values.

Why: on the review API's hot path Django spends more CPU building and compiling querysets
(the queue's score join and eligibility subqueries, a model version with its space) than
PostgreSQL spends running them: a profile under load put ~55% of the server's Python time
there. The shapes repeat from call to call; only a few values change (the reviewer, the
clock, the project). So a queryset is built once with marker values in their places,
compiled, and later runs put the real values in the marker parameters' positions.

The caller's key must hold everything else the SQL depends on (settings, model version,
filters, limit). A statement whose markers do not all come out as parameters (an
expression that inlines its value) is not kept: the caller runs it the ordinary way.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any, TypeVar

from django.db import connection
from django.db.models import Model, QuerySet

M = TypeVar("M", bound=Model)

# Values no row or clock holds: negative ids, a microsecond in 1901, text with a "~" (no
# slug, API token key or user name contains one).
MARKERS: dict[str, Any] = {
    "user": -7_340_031_337,
    "project": -7_340_031_338,
    "patch": -7_340_031_339,
    "now": datetime(1901, 2, 3, 4, 5, 6, 789_012, tzinfo=UTC),
    "slug": "~prepared-slug-marker~",
    "key": "~prepared-key-marker~",
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


def compile_once(key: Hashable, build: Callable[..., QuerySet[Any, Any]],
                 uses: Collection[str] = ("user", "now")) -> Statement | None:
    """The statement of ``build(**markers)`` (a values_list queryset, markers named by
    ``uses``), compiled on the first call for ``key``; None if it cannot be reused so."""
    with _lock:
        if key in _kept:
            _kept.move_to_end(key)
            return _kept[key]
    queryset = build(**{name: MARKERS[name] for name in uses})
    sql, params = queryset.query.get_compiler(using=queryset.db).as_sql()
    slots = tuple((i, name) for i, value in enumerate(params) for name in uses
                  if type(value) is type(MARKERS[name]) and value == MARKERS[name])
    found = {name for _, name in slots}
    statement = Statement(sql, tuple(params), slots) if found == set(uses) else None
    with _lock:
        _kept[key] = statement
        while len(_kept) > KEEP:
            _kept.popitem(last=False)
    return statement


def first_instances(key: Hashable, build: Callable[..., QuerySet[Any, Any]],
                    models: Sequence[type[Model]], /, **values: Any) -> tuple[Any, ...] | None:
    """The first row of ``build(**values)`` as one instance per model of ``models``, or None
    when there is none. ``build`` selects the :func:`columns` of each model in turn (the
    first's own, the others' behind their relation prefix); its statement is compiled once
    for ``key`` with markers in the places of ``values``, and if it cannot be kept so, this
    call's queryset is compiled and run the same way."""
    statement = compile_once(key, build, uses=tuple(values))
    if statement is None:
        queryset = build(**values)
        sql, params = queryset.query.get_compiler(using=queryset.db).as_sql()
        statement = Statement(sql, tuple(params), ())
    rows = statement.rows(**values)
    if not rows:
        return None
    found, start = [], 0
    for model in models:
        width = len(model._meta.concrete_fields)
        found.append(instance(model, rows[0][start : start + width]))
        start += width
    return tuple(found)


def columns(model: type[Model], prefix: str = "") -> list[str]:
    """values_list() names of ``model``'s columns, behind ``prefix`` (a relation path such
    as ``"space__"`` for a related row selected in the same statement)."""
    return [prefix + field.attname for field in model._meta.concrete_fields]


def instance(model: type[M], values: Sequence[Any]) -> M:
    """``model`` from one row of its :func:`columns`, as the ORM builds it (each field's
    database converters applied: JSON parsed, for one)."""
    names, converters = _converters(model, connection.vendor)
    converted = list(values)
    if len(converted) != len(names):
        raise ValueError(f"{model.__name__}: {len(names)} columns, got {len(converted)}")
    for position, column, convert in converters:
        converted[position] = convert(converted[position], column, connection)
    return model.from_db(connection.alias, names, converted)


@cache
def _converters(model: type[Model], vendor: str) -> tuple[list[str], list[tuple[int, Any, Any]]]:
    """``model``'s attnames and, per column that has any, what SQLCompiler.get_converters()
    applies to it when selected, looked up once per model rather than for every row."""
    fields = model._meta.concrete_fields
    converters = []
    for position, field in enumerate(fields):
        column = field.get_col(model._meta.db_table)
        for convert in (*connection.ops.get_db_converters(column),
                        *column.get_db_converters(connection)):
            converters.append((position, column, convert))
    return [field.attname for field in fields], converters
