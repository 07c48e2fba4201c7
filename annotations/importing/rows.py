"""Bulk rows of an import: tiles, their names and patches, through the ORM or COPY.

PostgreSQL gets :class:`CopyRows`: patches are streamed with ``COPY`` under ids taken from
their sequence up front, tiles and names go through a temporary table and
``INSERT ... SELECT ... ON CONFLICT`` (content-addressed tiles dedup there, even against a
concurrent import). Other databases (the SQLite demo) keep :class:`OrmRows`, Django's
``bulk_create``. Both write the same rows; tests/test_import_copy.py compares them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from annotations.models import Patch, Tile, TileName


class TileFile(NamedTuple):
    """A checked file to be a tile: ``file`` is its storage name or, linked, its path."""

    name: str
    sha256: str
    file: str
    linked: bool


class PatchRow(NamedTuple):
    """One patch to insert; ``grid`` holds the 25 tile ids (None for blank context)."""

    slide_id: int
    split: str
    image_name: str
    grid: list[int | None]
    label_id: int | None
    slide_x: int | None = None
    slide_y: int | None = None


class Rows(Protocol):
    """What the writer needs of the database, in bulk."""

    def known_names(self, project_id: int, names: Sequence[str]) -> dict[str, int]: ...

    def existing_patches(self, project_id: int, names: Sequence[str]) -> dict[str, int]: ...

    def add_tiles(self, project_id: int, files: Sequence[TileFile]
                  ) -> tuple[dict[str, int], list[int]]:
        """(name -> tile id of its content, ids of the tiles newly created)."""
        ...

    def add_patches(self, project_id: int, job_id: int | None, rows: Sequence[PatchRow]
                    ) -> list[int]:
        """Insert ``rows``; their ids, in order."""
        ...


def rows_for(db: BaseDatabaseWrapper = connection) -> Rows:
    return CopyRows(db) if db.vendor == "postgresql" else OrmRows()


def centre_of(row: PatchRow) -> int:
    centre = row.grid[len(row.grid) // 2]
    if centre is None:
        raise ValueError(f"{row.image_name}: a patch needs its centre tile")
    return centre


class OrmRows:
    """Django's bulk_create: any database, one model instance per row."""

    def known_names(self, project_id: int, names: Sequence[str]) -> dict[str, int]:
        return dict(TileName.objects.filter(project_id=project_id, name__in=names)
                    .values_list("name", "tile_id"))

    def existing_patches(self, project_id: int, names: Sequence[str]) -> dict[str, int]:
        return dict(Patch.objects.filter(project_id=project_id, image_name__in=names)
                    .values_list("image_name", "id"))

    def add_tiles(self, project_id: int, files: Sequence[TileFile]
                  ) -> tuple[dict[str, int], list[int]]:
        shas = {f.sha256 for f in files}
        tile_ids = dict(Tile.objects.filter(project_id=project_id, sha256__in=shas)
                        .values_list("sha256", "id"))
        new: dict[str, Tile] = {}
        for f in files:
            if f.sha256 not in tile_ids and f.sha256 not in new:
                new[f.sha256] = Tile(project_id=project_id, sha256=f.sha256, file=f.file,
                                     linked=f.linked, name=f.name)
        created = []
        for tile in Tile.objects.bulk_create(new.values()):
            tile_ids[tile.sha256] = tile.id
            created.append(tile.id)
        by_name = {f.name: tile_ids[f.sha256] for f in files}
        TileName.objects.bulk_create(
            [TileName(project_id=project_id, name=name, tile_id=tile_id)
             for name, tile_id in by_name.items()], ignore_conflicts=True)
        return by_name, created

    def add_patches(self, project_id: int, job_id: int | None, rows: Sequence[PatchRow]
                    ) -> list[int]:
        patches = [Patch(project_id=project_id, slide_id=r.slide_id, split=r.split,
                         image_name=r.image_name, centre_tile_id=centre_of(r), grid=r.grid,
                         missing_context=r.grid.count(None), original_label_id=r.label_id,
                         current_label_id=r.label_id, slide_x=r.slide_x, slide_y=r.slide_y,
                         import_job_id=job_id)
                   for r in rows]
        return [p.pk for p in Patch.objects.bulk_create(patches)]


# The patch columns an import sets per row; every other column gets its field's default.
PER_ROW = ("id", "project_id", "slide_id", "split", "image_name", "centre_tile_id", "grid",
           "missing_context", "original_label_id", "current_label_id", "slide_x", "slide_y",
           "import_job_id", "created_at")
STAGE = "spider_import_tiles"
# A list of file names sent as one string: Django's client-side binding would quote each
# element of an array parameter in Python. A SPIDER file name holds no backslash
# (validation.unsafe_name_reason), so it separates them.
NAME_LIST = "string_to_array(%s, E'\\\\')"


def joined_names(names: Sequence[str]) -> str | None:
    """``names`` joined by backslashes; None when one holds a backslash itself (a class
    folder's file may), which then goes by the ORM."""
    joined = "\\".join(names)
    return joined if joined.count("\\") == len(names) - 1 else None


NAME_STAGE = "spider_import_tile_names"


class CopyRows:
    """PostgreSQL: ``COPY`` for the bulk, a handful of statements per batch."""

    def __init__(self, db: BaseDatabaseWrapper) -> None:
        self.db = db
        self.tile, self.name, self.patch = (Tile._meta.db_table, TileName._meta.db_table,
                                            Patch._meta.db_table)
        fields = [f for f in Patch._meta.concrete_fields if f.column not in PER_ROW]
        self.default_columns = [f.column for f in fields]
        self.defaults = [f.get_db_prep_save(f.get_default(), db) for f in fields]
        self._staged: object = None  # the connection whose session has the staging tables

    def _rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self.db.cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())

    def known_names(self, project_id: int, names: Sequence[str]) -> dict[str, int]:
        if not names:
            return {}
        if (joined := joined_names(names)) is None:
            return OrmRows().known_names(project_id, names)
        return dict(self._rows(f"SELECT name, tile_id FROM {self.name} "
                               f"WHERE project_id = %s AND name = ANY({NAME_LIST})",
                               [project_id, joined]))

    def existing_patches(self, project_id: int, names: Sequence[str]) -> dict[str, int]:
        if not names:
            return {}
        if (joined := joined_names(names)) is None:
            return OrmRows().existing_patches(project_id, names)
        return dict(self._rows(f"SELECT image_name, id FROM {self.patch} "
                               f"WHERE project_id = %s AND image_name = ANY({NAME_LIST})",
                               [project_id, joined]))

    def _stage(self, cursor: Any) -> None:
        """The session's staging tables; a temporary table lasts as long as the connection
        (or until the transaction that made it rolls back, which ends the import)."""
        if self._staged is not self.db.connection:
            cursor.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {STAGE} "
                           "(ord integer, name text, sha256 text, file text, linked boolean)")
            cursor.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {NAME_STAGE} "
                           "(name text, tile_id bigint)")
            self._staged = self.db.connection
        cursor.execute(f"TRUNCATE {STAGE}, {NAME_STAGE}")

    def add_tiles(self, project_id: int, files: Sequence[TileFile]
                  ) -> tuple[dict[str, int], list[int]]:
        if not files:
            return {}, []
        with self.db.cursor() as cursor:
            self._stage(cursor)
            with cursor.cursor.copy(f"COPY {STAGE} (ord, name, sha256, file, linked) "
                                    "FROM STDIN") as copy:
                for ord_, f in enumerate(files):
                    copy.write_row((ord_, f.name, f.sha256, f.file, f.linked))
            # The first name of a content in the batch names its tile, as bulk_create did;
            # content already in the project (or added by a concurrent import) conflicts.
            cursor.execute(
                f"INSERT INTO {self.tile} (project_id, sha256, file, linked, name) "
                f"SELECT DISTINCT ON (sha256) %s, sha256, file, linked, name FROM {STAGE} "
                "ORDER BY sha256, ord "
                "ON CONFLICT (project_id, sha256) DO NOTHING RETURNING sha256, id", [project_id])
            by_sha: dict[str, int] = dict(cursor.fetchall())
            created = list(by_sha.values())
            if older := list({f.sha256 for f in files} - by_sha.keys()):
                # looked up by the unique index: a join would hash the project's every tile
                cursor.execute(f"SELECT sha256, id FROM {self.tile} "
                               "WHERE project_id = %s AND sha256 = ANY(%s)",
                               [project_id, older])
                by_sha.update(cursor.fetchall())
            by_name = {f.name: by_sha[f.sha256] for f in files}
            with cursor.cursor.copy(f"COPY {NAME_STAGE} (name, tile_id) FROM STDIN") as copy:
                for item in by_name.items():
                    copy.write_row(item)
            cursor.execute(f"INSERT INTO {self.name} (project_id, name, tile_id) "
                           f"SELECT %s, name, tile_id FROM {NAME_STAGE} "
                           "ON CONFLICT (project_id, name) DO NOTHING", [project_id])
        return by_name, created

    def add_patches(self, project_id: int, job_id: int | None, rows: Sequence[PatchRow]
                    ) -> list[int]:
        if not rows:
            return []
        now: datetime = timezone.now()
        with self.db.cursor() as cursor:
            cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id')) "
                           "FROM generate_series(1, %s)", [self.patch, len(rows)])
            ids = [row[0] for row in cursor.fetchall()]
            columns = ", ".join((*PER_ROW, *self.default_columns))
            defaults = tuple(self.defaults)
            with cursor.cursor.copy(f"COPY {self.patch} ({columns}) FROM STDIN") as copy:
                for patch_id, r in zip(ids, rows, strict=True):
                    copy.write_row((patch_id, project_id, r.slide_id, r.split, r.image_name,
                                    centre_of(r), json.dumps(r.grid), r.grid.count(None),
                                    r.label_id, r.label_id, r.slide_x, r.slide_y, job_id,
                                    now, *defaults))
        return ids
