"""Keys checked once per statement (annotations.set_keys) refuse what constraints refused.

Patches, tiles and tile names have no foreign key constraints on PostgreSQL; statement
triggers check them instead. Each test writes the way the app or a careless script would
(the ORM, bulk_create, raw SQL) and expects the database itself to say no.
"""

from __future__ import annotations

import importlib
import io
import threading
from pathlib import Path

import psycopg
import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import IntegrityError, connection, models, transaction

from annotations.models import ImportJob, LabelClass, Patch, Project, Tile, TileName

BOGUS = 2**40
MIGRATION = importlib.import_module("annotations.migrations.0011_set_based_foreign_keys")
PATCH_KEYS = ["project", "slide", "centre_tile", "original_label", "current_label",
              "import_job"]


def copy_of(patch: Patch, name: str = "copy.png", changes: dict[str, int] | None = None
            ) -> Patch:
    """An unsaved patch like ``patch``, named ``name``, with ``changes`` to its columns."""
    values = {f.attname: getattr(patch, f.attname) for f in Patch._meta.concrete_fields
              if not f.primary_key}
    values.update(image_name=name, **(changes or {}))
    return Patch(**values)


@pytest.mark.django_db
@pytest.mark.parametrize("key", PATCH_KEYS)
def test_a_patch_pointing_nowhere_is_refused(imported: Project, key: str) -> None:
    patch = imported.patches.first()
    assert patch is not None and patch.import_job_id is not None
    before = Patch.objects.count()
    nowhere = rf"Key \({key}_id\)=\({BOGUS}\) is not present"
    with pytest.raises(IntegrityError, match=nowhere), transaction.atomic():
        copy_of(patch, changes={f"{key}_id": BOGUS}).save()
    assert Patch.objects.count() == before


@pytest.mark.django_db
def test_one_bad_row_refuses_the_whole_bulk_insert(imported: Project) -> None:
    patch = imported.patches.first()
    assert patch is not None
    good = [copy_of(patch, f"copy-{n}.png") for n in range(3)]
    bad = copy_of(patch, "copy-bad.png", {"centre_tile_id": BOGUS})
    with pytest.raises(IntegrityError, match=r"centre_tile_id"), transaction.atomic():
        Patch.objects.bulk_create([*good, bad])
    assert not Patch.objects.filter(image_name__startswith="copy-").exists()
    Patch.objects.bulk_create(good)  # the same rows without the bad one go in
    assert Patch.objects.filter(image_name__startswith="copy-").count() == 3


@pytest.mark.django_db
def test_tiles_and_names_pointing_nowhere_are_refused(imported: Project) -> None:
    tile = Tile.objects.filter(project=imported).first()
    assert tile is not None
    with pytest.raises(IntegrityError, match=r"Key \(project_id\)"), transaction.atomic():
        Tile.objects.create(project_id=BOGUS, sha256="0" * 64, file="x.png", name="x.png")
    with pytest.raises(IntegrityError, match=r"Key \(tile_id\)"), transaction.atomic():
        TileName.objects.create(project=imported, name="x.png", tile_id=BOGUS)
    with pytest.raises(IntegrityError, match=r"Key \(project_id\)"), transaction.atomic():
        TileName.objects.create(project_id=BOGUS, name="x.png", tile=tile)
    TileName.objects.create(project=imported, name="x.png", tile=tile)


@pytest.mark.django_db
def test_changing_a_key_to_nowhere_is_refused(imported: Project) -> None:
    patch = imported.patches.first()
    assert patch is not None and patch.current_label_id is not None
    other = LabelClass.objects.filter(project=imported).exclude(id=patch.current_label_id)[0]
    patch.current_label_id = BOGUS
    update_refused = r"(?s)update on table \"annotations_patch\".*Key \(current_label_id\)"
    with pytest.raises(IntegrityError, match=update_refused), transaction.atomic():
        patch.save()
    patch.current_label_id = other.id
    patch.save()  # a real class is fine
    assert Patch.objects.get(id=patch.id).current_label_id == other.id
    with pytest.raises(IntegrityError, match=r"Key \(tile_id\)"), transaction.atomic():
        TileName.objects.filter(project=imported).update(tile_id=BOGUS)


@pytest.mark.django_db
def test_deleting_a_parent_still_pointed_at_is_refused(imported: Project) -> None:
    patch = imported.patches.first()
    assert patch is not None
    for table, key, child in [("annotations_tile", patch.centre_tile_id, "annotations_patch"),
                              ("annotations_labelclass", patch.current_label_id,
                               "annotations_patch"),
                              ("annotations_slide", patch.slide_id, "annotations_patch"),
                              ("annotations_project", imported.id, "annotations_patch")]:
        still = rf"Key \(id\)=\({key}\) is still referenced from table \"{child}\""
        with pytest.raises(IntegrityError, match=still), transaction.atomic(), \
                connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {table} WHERE id = %s", [key])
    named = TileName.objects.filter(project=imported).values_list("tile_id", flat=True)
    unused_by_patches = Tile.objects.filter(id__in=named).exclude(
        id__in=Patch.objects.values("centre_tile_id")).first()
    assert unused_by_patches is not None
    by_name = r"still referenced from table \"annotations_tilename\""
    with pytest.raises(IntegrityError, match=by_name), transaction.atomic(), \
            connection.cursor() as cursor:
        cursor.execute("DELETE FROM annotations_tile WHERE id = %s", [unused_by_patches.id])
    with pytest.raises(IntegrityError, match=r"cannot change"), transaction.atomic(), \
            connection.cursor() as cursor:
        cursor.execute("UPDATE annotations_labelclass SET id = id + %s WHERE id = %s",
                       [BOGUS, patch.current_label_id])


@pytest.mark.django_db
def test_django_deletes_in_order_and_nulls_a_deleted_job(imported: Project) -> None:
    patch = imported.patches.first()
    assert patch is not None and patch.import_job_id is not None
    job = ImportJob.objects.get(id=patch.import_job_id)
    job.delete()  # SET_NULL: the patches stay, their job is gone
    assert imported.patches.exists() and not imported.patches.filter(
        import_job__isnull=False).exists()
    imported.delete()  # CASCADE in Django's order: children first
    assert not Patch.objects.exists() and not Tile.objects.exists()
    assert not TileName.objects.exists()


def _raw(dsn: str) -> psycopg.Connection:
    raw = psycopg.connect(dsn, autocommit=False)
    raw.execute("SET lock_timeout = '20s'")
    return raw


@pytest.fixture
def dsn(transactional_db: None) -> str:
    """The test database, for connections of its own (committed rows, as other clients)."""
    s = connection.settings_dict
    return (f"host={s['HOST'] or 'localhost'} port={s['PORT'] or 5432} "
            f"dbname={s['NAME']} user={s['USER']}")


def insert_copy_sql() -> str:
    """INSERT a copy of patch %(patch)s named racing.png with current class %(label)s, in
    raw SQL, as a script beside the app would."""
    columns = [f.column for f in Patch._meta.concrete_fields]
    values = {"id": "nextval(pg_get_serial_sequence('annotations_patch', 'id'))",
              "image_name": "'racing.png'", "current_label_id": "%(label)s"}
    return (f"INSERT INTO annotations_patch ({', '.join(columns)}) "
            f"SELECT {', '.join(values.get(c, c) for c in columns)} "
            "FROM annotations_patch WHERE id = %(patch)s")


def race(dsn: str, first: str, label_id: int, patch_id: int) -> BaseException | None:
    """``first`` ("insert" or "delete") runs on one connection and holds its transaction
    open; the other statement, on a second connection, must wait for it; then the first
    commits. Returns what the second statement raised."""
    inserter, deleter = _raw(dsn), _raw(dsn)
    statements = {
        "insert": lambda: inserter.execute(insert_copy_sql(),
                                           {"label": label_id, "patch": patch_id}),
        "delete": lambda: deleter.execute("DELETE FROM annotations_labelclass WHERE id = %s",
                                          [label_id]),
    }
    second = "delete" if first == "insert" else "insert"
    errors: list[BaseException] = []

    def run_second() -> None:
        try:
            statements[second]()
            (inserter if second == "insert" else deleter).commit()
        except psycopg.Error as exc:
            errors.append(exc)
    try:
        statements[first]()
        thread = threading.Thread(target=run_second)
        thread.start()
        thread.join(1.0)
        assert thread.is_alive(), f"{first} first: the {second} did not wait for it"
        (inserter if first == "insert" else deleter).commit()
        thread.join(30)
        assert not thread.is_alive()
    finally:
        for raw in (inserter, deleter):
            raw.rollback()
            raw.close()
    return errors[0] if errors else None


def test_a_delete_racing_an_insert_that_points_at_it_fails(
        dsn: str, project: Project, sample_spider: Path) -> None:
    """Both orders: whichever comes second waits for the first, then fails, so the class is
    never gone while a patch points at it."""
    call_command("import_spider", str(sample_spider), project=project.slug, json=True,
                 stdout=io.StringIO())
    patch = project.patches.first()
    assert patch is not None
    for index, first in enumerate(("insert", "delete"), start=90):
        label = LabelClass.objects.create(project=project, name=f"spare-{first}", index=index)
        error = race(dsn, first, label.id, patch.id)
        assert isinstance(error, psycopg.errors.ForeignKeyViolation), error
        racing = Patch.objects.filter(image_name="racing.png", current_label_id=label.id)
        assert LabelClass.objects.filter(id=label.id).exists() == (first == "insert")
        assert racing.exists() == (first == "insert")
        racing.delete()


def test_every_key_without_a_constraint_is_checked() -> None:
    """A new ``db_constraint=False`` key must be added to the triggers (or listed here)."""
    unchecked_on_purpose = {("annotations_projectcount", "project_id")}  # see ProjectCount
    checked = {(rel.child, rel.column) for rel in MIGRATION.RELATIONS}
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if isinstance(field, models.ForeignKey) and not field.db_constraint:  # type: ignore[attr-defined]
                key = (model._meta.db_table, field.column)
                assert key in checked | unchecked_on_purpose, key
    assert {(rel.child, rel.column, rel.parent) for rel in MIGRATION.RELATIONS} == {
        (m._meta.db_table, f.column, f.related_model._meta.db_table)  # type: ignore[union-attr]
        for m in (Patch, Tile, TileName) for f in m._meta.concrete_fields
        if isinstance(f, models.ForeignKey)}
