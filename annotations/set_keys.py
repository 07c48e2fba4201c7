"""Foreign keys checked once per statement instead of once per row (PostgreSQL).

A foreign key constraint runs a query per inserted row and key: six per imported patch,
one per tile and two per tile name, about a quarter of a SPIDER import's time
(``bench/import_bench.py``; README, *Measured*). An import inserts thousands of rows per
statement that point at a handful of parents (one project, a few classes and slides) and
at tiles it has just inserted, so one set-based check per statement does the same work.

For the relations given, the migration that calls :func:`create_sql` drops the constraint
(the model field says ``db_constraint=False``) and installs instead:

* on the child, after each INSERT statement: the distinct keys of the new rows, their
  parents locked ``FOR KEY SHARE`` (as the constraint's own check does, so a concurrent
  delete of a parent waits for this transaction or makes this check fail), any key without
  a parent raising ``foreign_key_violation`` (Django's ``IntegrityError``); after an UPDATE
  that changes a key, the same check for that row;
* on the parent, after each DELETE statement: any child row still pointing at a deleted
  row raises the same error (Django's ``on_delete`` deletes or nulls the children first, as
  it does with constraints); its ``id`` cannot change.

The checks run at the end of each statement, not at commit: a child must not be inserted
before its parent within a transaction (nothing here does). They hold under READ
COMMITTED, the isolation Django uses: a parent-side check that waited for a concurrent
child insert then sees its rows. TRUNCATE skips them, as ``TRUNCATE ... CASCADE`` would.
Other databases (the SQLite demo) get no check on these columns beyond Django's own.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import NamedTuple


class Relation(NamedTuple):
    """``child.column`` points at ``parent.id``."""

    child: str
    column: str
    parent: str


# The triggers (each calling the function of its name) made for a child and for a parent
# table, named ``<table>_<suffix>``.
CHILD_TRIGGERS = ("keys_insert", "keys_update")
PARENT_TRIGGERS = ("keys_delete", "id_fixed")


def _violation(operation: str, table: str, detail: str) -> str:
    return (f"RAISE EXCEPTION '{operation} on table \"{table}\" violates a foreign key' "
            f"USING ERRCODE = 'foreign_key_violation', DETAIL = {detail};")


def _trigger(table: str, suffix: str, event: str, scope: str, body: str,
             declare: str = "") -> str:
    """A PL/pgSQL function ``<table>_<suffix>`` running ``body``, and the trigger of that
    name firing it on ``event`` (``AFTER INSERT``...) with ``scope`` (``FOR EACH ...``)."""
    name = f"{table}_{suffix}"
    return f"""
CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
{declare}BEGIN{body}
  RETURN NULL;
END $$;
CREATE TRIGGER {name} {event} ON {table} {scope} EXECUTE FUNCTION {name}();
"""


def _child_sql(child: str, relations: Sequence[Relation]) -> str:
    # Each key is probed on its own (a LATERAL subquery is a nested loop over the parent's
    # primary key): a join, which the planner may hash over the whole parent table, costs
    # as much as the table at every statement.
    checks = []
    for rel in relations:
        detail = (f"format('Key ({rel.column})=(%s) is not present in table "
                  f"\"{rel.parent}\".', missing)")
        checks.append(f"""
  SELECT w.k INTO missing
    FROM (SELECT DISTINCT {rel.column} AS k FROM new_rows WHERE {rel.column} IS NOT NULL) w
    LEFT JOIN LATERAL (SELECT p.id FROM {rel.parent} p WHERE p.id = w.k
                       FOR KEY SHARE OF p) found ON true
   WHERE found.id IS NULL LIMIT 1;
  IF missing IS NOT NULL THEN
    {_violation("insert", child, detail)}
  END IF;""")
    row_checks = []
    for rel in relations:
        detail = (f"format('Key ({rel.column})=(%s) is not present in table "
                  f"\"{rel.parent}\".', NEW.{rel.column})")
        row_checks.append(f"""
  IF NEW.{rel.column} IS NOT NULL AND NEW.{rel.column} IS DISTINCT FROM OLD.{rel.column} THEN
    PERFORM 1 FROM {rel.parent} p WHERE p.id = NEW.{rel.column} FOR KEY SHARE;
    IF NOT FOUND THEN
      {_violation("update", child, detail)}
    END IF;
  END IF;""")
    changed = " OR ".join(f"OLD.{rel.column} IS DISTINCT FROM NEW.{rel.column}"
                          for rel in relations)
    return (_trigger(child, "keys_insert", "AFTER INSERT",
                     "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT", "".join(checks),
                     declare="DECLARE missing bigint;\n")
            + _trigger(child, "keys_update", "AFTER UPDATE", f"FOR EACH ROW WHEN ({changed})",
                       "".join(row_checks)))


def _parent_sql(parent: str, relations: Sequence[Relation]) -> str:
    # One index probe of the child per deleted row: with ``child.column IN (old rows) LIMIT
    # 1`` the planner expected an early hit and scanned the child table instead, at every
    # statement of a deletion that finds none (Django deletes in statements of 100 rows).
    checks = []
    for rel in relations:
        detail = (f"format('Key (id)=(%s) is still referenced from table \"{rel.child}\".', "
                  "referenced)")
        checks.append(f"""
  SELECT o.id INTO referenced FROM old_rows o
   CROSS JOIN LATERAL (SELECT 1 FROM {rel.child} c WHERE c.{rel.column} = o.id LIMIT 1) hit
   LIMIT 1;
  IF referenced IS NOT NULL THEN
    {_violation("delete", parent, detail)}
  END IF;""")
    fixed = _violation("update", parent, "format('Key (id)=(%s) cannot change.', OLD.id)")
    return (_trigger(parent, "keys_delete", "AFTER DELETE",
                     "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT", "".join(checks),
                     declare="DECLARE referenced bigint;\n")
            + _trigger(parent, "id_fixed", "BEFORE UPDATE OF id",
                       "FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)", f"\n  {fixed}"))


def _grouped(relations: Sequence[Relation], by: str) -> dict[str, list[Relation]]:
    groups: dict[str, list[Relation]] = defaultdict(list)
    for rel in relations:
        groups[getattr(rel, by)].append(rel)
    return groups


def create_sql(relations: Sequence[Relation]) -> str:
    """The functions and triggers that check ``relations`` (each table's in one function).

    Migration 0011 ran this text when it was applied: a change here reaches an existing
    database only through a new migration that replaces the functions."""
    return "".join([*(_child_sql(child, rels)
                      for child, rels in _grouped(relations, "child").items()),
                    *(_parent_sql(parent, rels)
                      for parent, rels in _grouped(relations, "parent").items())])


def drop_sql(relations: Sequence[Relation]) -> str:
    """Undo :func:`create_sql` (the constraints come back with the fields' migration)."""
    made = [(table, suffix) for by, suffixes in (("child", CHILD_TRIGGERS),
                                                 ("parent", PARENT_TRIGGERS))
            for table in _grouped(relations, by) for suffix in suffixes]
    return "\n".join(f"DROP TRIGGER {table}_{suffix} ON {table}; DROP FUNCTION {table}_{suffix}();"
                     for table, suffix in made)
