"""import_spider's COPY path: the rows a user gets equal the ORM path's, across batches that
overlap, and a failure leaves whole batches or (with --strict) nothing."""

from __future__ import annotations

import io
import json
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from annotations.importing import ImportReport
from annotations.importing import rows as rows_module
from annotations.importing import writer as writer_module
from annotations.importing.records import all_names_safe
from annotations.importing.validation import unsafe_name_reason
from annotations.models import LabelClass, Patch, Project, Slide, Tile, TileName


def run(path: Path, slug: str, *options: str, **kwargs: Any) -> dict[str, Any]:
    out = io.StringIO()
    call_command("import_spider", str(path), *options, project=slug, json=True, stdout=out,
                 **kwargs)
    result = json.loads(out.getvalue())
    assert result.pop("seconds") >= 0 and result.pop("cpu_seconds") >= 0  # differ run to run
    return result


def snapshot(slug: str) -> dict[str, Any]:
    """Everything an import wrote for the project, with ids replaced by what they name."""
    project = Project.objects.get(slug=slug)
    sha = dict(Tile.objects.filter(project=project).values_list("id", "sha256"))
    patches = Patch.objects.filter(project=project).select_related(
        "slide", "original_label", "current_label")
    return {
        "tiles": sorted(Tile.objects.filter(project=project)
                        .values_list("sha256", "name", "linked", "file")),
        "names": sorted((name, sha[tile]) for name, tile in
                        TileName.objects.filter(project=project).values_list("name", "tile")),
        "classes": sorted(LabelClass.objects.filter(project=project)
                          .values_list("name", "index", "colour", "hotkey")),
        "slides": sorted(Slide.objects.filter(project=project).values_list("name", flat=True)),
        "patches": sorted(
            (p.image_name, p.split, p.slide.name, p.original_label.name, p.current_label.name,
             p.status, p.version, p.decisions, p.leases_held, p.lease_expires,
             p.missing_context, sha[p.centre_tile_id],
             tuple(None if t is None else sha[t] for t in p.grid), p.slide_x, p.slide_y,
             p.created_at is not None, p.import_job_id is not None)
            for p in patches),
    }


def write_metadata(root: Path, records: list[dict[str, Any]]) -> None:
    (root / "metadata.json").write_text(json.dumps(records), encoding="utf-8")


def metadata(root: Path) -> list[dict[str, Any]]:
    return json.loads((root / "metadata.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("link", [True, False], ids=["link", "copy"])
def test_copy_rows_equal_the_orm_rows(db, sample_spider, settings, monkeypatch, link):
    assert isinstance(rows_module.rows_for(), rows_module.CopyRows)  # PostgreSQL: COPY
    options = ["--link"] if link else []
    settings.SPIDER_IMPORT_BATCH = 3  # batches share context tiles, read two batches ahead
    by_copy = run(sample_spider, "by-copy", *options)
    settings.SPIDER_IMPORT_BATCH = 10_000  # the ORM in one batch: no overlap at all
    monkeypatch.setattr(writer_module, "rows_for", rows_module.OrmRows)
    by_orm = run(sample_spider, "by-orm", *options)
    assert by_copy == by_orm
    assert list(by_copy) == [f.name for f in fields(ImportReport)] + ["notes_total"]
    assert by_copy["patches_created"] == len(metadata(sample_spider)) > 3
    assert snapshot("by-copy") == snapshot("by-orm")
    for slug in ("by-copy", "by-orm"):  # each patch names the run that made it
        jobs = Patch.objects.filter(project__slug=slug).values("import_job").distinct()
        assert jobs.count() == 1


def test_a_name_still_being_read_two_batches_back_resolves_to_its_tile(db, spider_copy,
                                                                      settings):
    """Batches are prepared two ahead of their write: when batch 2 is prepared, the files of
    batch 0 may still be being read, and its names must resolve from batch 0's files."""
    settings.SPIDER_IMPORT_BATCH = 1
    records = metadata(spider_copy)
    first = max(records, key=lambda r: len(r["context_info"]))
    other = next(r for r in records if r["slide_id"] != first["slide_id"]
                 and not set(r["context_info"].values()) & set(first["context_info"].values()))
    used = set(first["context_info"].values()) | {first["image_name"], other["image_name"]}
    third = next(r for r in records if r["image_name"] not in used)
    twin = {**first, "image_name": third["image_name"]}  # the first's context, its own centre
    write_metadata(spider_copy, [first, {**other, "context_info": {}}, twin])
    result = run(spider_copy, "two-back", "--link")
    assert result["patches_created"] == 3 and not result["skipped"]
    grids = {p.image_name: p.grid for p in Patch.objects.filter(project__slug="two-back")}
    centre = 12
    shared = [i for i in range(25) if i != centre]
    assert [grids[first["image_name"]][i] for i in shared] == \
        [grids[twin["image_name"]][i] for i in shared]
    names = used | {third["image_name"]}
    assert Tile.objects.filter(project__slug="two-back").count() == len(names)
    assert result["tiles_created"] == len(names)


def test_reimport_adds_nothing(db, sample_spider, settings):
    settings.SPIDER_IMPORT_BATCH = 4
    first = run(sample_spider, "again", "--link")
    before = snapshot("again")
    second = run(sample_spider, "again", "--link")
    assert second["patches_created"] == 0 and second["tiles_created"] == 0
    assert second["patches_existing"] == first["patches_created"]
    assert second["tiles_reused"] == first["tiles_created"]
    after = snapshot("again")
    assert after["tiles"] == before["tiles"] and after["patches"] == before["patches"]


def test_metadata_breaking_off_keeps_whole_batches_and_a_rerun_completes(
        db, spider_copy, sample_spider, settings):
    settings.SPIDER_IMPORT_BATCH = 4
    records = metadata(spider_copy)
    # whitespace between records makes the file read in many chunks, as a large one is
    head = "[" + ("," + " " * 70_000).join(json.dumps(r) for r in records[:10])
    # cut inside record 10: records 0-9 parse, the batch of 8-11 never completes
    broken = head + "," + json.dumps(records[10])[:20]
    (spider_copy / "metadata.json").write_text(broken, encoding="utf-8")
    with pytest.raises(CommandError, match=r"metadata\.json is not a valid JSON array"):
        run(spider_copy, "broken", "--link")
    project = Project.objects.get(slug="broken")
    made = set(Patch.objects.filter(project=project).values_list("image_name", flat=True))
    assert made == {r["image_name"] for r in records[:8]}  # two whole batches, no part
    # every tile written belongs to a name, every name to a tile: no half-written batch
    assert not Tile.objects.filter(project=project, names=None).exists()
    write_metadata(spider_copy, records)
    rerun = run(spider_copy, "broken", "--link")
    assert rerun["patches_existing"] == 8
    assert rerun["patches_created"] == len(records) - 8
    run(spider_copy, "clean", "--link")
    assert snapshot("broken")["patches"] == snapshot("clean")["patches"]


def test_strict_failure_in_a_late_batch_leaves_nothing(db, spider_copy, settings):
    settings.SPIDER_IMPORT_BATCH = 3
    records = metadata(spider_copy)
    images = spider_copy / "images"
    last = records[-1]
    damaged = bytearray((images / last["image_name"]).read_bytes())
    damaged[len(damaged) // 2:len(damaged) // 2 + 16] = bytes(16)
    (images / "damaged.png").write_bytes(bytes(damaged))
    last["image_name"] = "damaged.png"
    write_metadata(spider_copy, records)
    with pytest.raises(CommandError, match=r"damaged\.png.*corrupt"):
        run(spider_copy, "strict", strict=True)  # copied, not linked: files are stored
    assert not Patch.objects.exists() and not Tile.objects.exists()
    assert not TileName.objects.exists() and not Slide.objects.exists()
    tiles_dir = Path(settings.MEDIA_ROOT) / "tiles"
    assert not tiles_dir.exists() or not any(p.is_file() for p in tiles_dir.rglob("*"))


def test_a_legal_name_with_two_dots_is_kept_and_a_parent_path_refused(db, spider_copy,
                                                                        settings):
    settings.SPIDER_IMPORT_BATCH = 4
    records = metadata(spider_copy)
    images = spider_copy / "images"
    # a legal name holding ".." (the joined scan doubts it, the per-name check accepts it)
    old = records[0]["image_name"]
    (images / old).rename(images / "a..b.png")
    for record in records:
        if record["image_name"] == old:
            record["image_name"] = "a..b.png"
        for key, name in record["context_info"].items():
            if name == old:
                record["context_info"][key] = "a..b.png"
    records[5]["context_info"]["0_1"] = "../metadata.json"  # refused, naming the record
    write_metadata(spider_copy, records)
    report = run(spider_copy, "names", "--link")
    [bad] = report["skipped"]
    assert bad["index"] == 5 and bad["file"] == "../metadata.json"
    assert "outside the dataset folder" in bad["reason"]
    assert Patch.objects.filter(image_name="a..b.png").exists()


@pytest.mark.parametrize("names", [
    ["a.png"], ["a.png", "b/c.png"], [""], ["/a.png"], ["a/../b.png"], ["a\\b.png"],
    ["a\x00b.png"], [3], ["a..b.png"], ["a.png", ""], ["a.png", "/etc/passwd"],
])
def test_the_joined_name_scan_never_passes_a_name_the_one_by_one_check_refuses(names):
    """The fast path may doubt a good name, never trust a bad one."""
    if all_names_safe(names):
        assert not any(unsafe_name_reason(name) for name in names)  # type: ignore[arg-type]
    assert all_names_safe(["a.png", "b/c.png"]) and not all_names_safe(["a..b.png"])
