"""import_spider: counts, sharing, re-import, links, notes and the bad-input cases."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from PIL import Image

from annotations.importing import ImportAborted, import_spider
from annotations.models import LabelClass, Patch, Tile, TileName


def metadata(root: Path) -> list[dict]:
    return json.loads((root / "metadata.json").read_text(encoding="utf-8"))


def write_metadata(root: Path, records: list) -> None:
    (root / "metadata.json").write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")


def referenced_names(records: list[dict]) -> set[str]:
    return {r["image_name"] for r in records} | {
        n for r in records for n in r["context_info"].values()}


def test_import_creates_patches_and_stores_each_tile_once(project, sample_spider):
    records = metadata(sample_spider)
    report = import_spider(project, sample_spider)
    assert report.records == len(records) == report.patches_created
    assert report.skipped == []
    assert Patch.objects.filter(project=project).count() == len(records)
    # 25 records share most tiles; each referenced file becomes exactly one tile.
    assert Tile.objects.filter(project=project).count() == len(referenced_names(records))
    assert report.tiles_created == len(referenced_names(records))
    assert report.slides == len({r["slide_id"] for r in records})
    patch = Patch.objects.get(project=project, image_name=records[0]["image_name"])
    assert patch.original_label.name == records[0]["class"] == patch.current_label.name
    assert patch.split == records[0]["split"]
    names = dict(TileName.objects.filter(project=project).values_list("name", "tile_id"))
    assert patch.centre_tile_id == names[records[0]["image_name"]]
    for key, name in records[0]["context_info"].items():
        row, col = map(int, key.split("_"))
        assert patch.grid[row * 5 + col] == names[name]


def test_reimport_adds_nothing_and_says_so(project, sample_spider):
    first = import_spider(project, sample_spider)
    tiles_before = Tile.objects.count()
    second = import_spider(project, sample_spider)
    assert second.patches_created == 0 and second.tiles_created == 0
    assert second.patches_existing == first.patches_created
    assert second.tiles_reused == first.tiles_created
    assert Tile.objects.count() == tiles_before
    assert "Nothing new" in second.summary_line()


def test_missing_context_keys_give_blank_tiles_and_a_note(project, spider_copy):
    records = metadata(spider_copy)
    full = next(i for i, r in enumerate(records) if len(r["context_info"]) == 24)
    del records[full]["context_info"]["0_0"]
    del records[full]["context_info"]["4_4"]
    write_metadata(spider_copy, records)
    report = import_spider(project, spider_copy)
    patch = Patch.objects.get(project=project, image_name=records[full]["image_name"])
    assert patch.grid[0] is None and patch.grid[24] is None
    assert patch.missing_context == 2
    assert any(n.index == full and n.note == "context missing at 0_0, 4_4: shown blank"
               for n in report.notes)
    assert report.skipped == []


def test_notes_past_the_kept_ones_are_counted_not_listed(project, spider_copy, capsys,
                                                         monkeypatch):
    """Memory and the job's summary stay flat: a 160k-record import has ~56k notes."""
    from annotations.importing import report as report_module
    from annotations.models import ImportJob

    monkeypatch.setattr(report_module, "NOTES_KEPT", 2)
    records = metadata(spider_copy)
    for record in records:  # every record lacks its top-left neighbour
        record["context_info"].pop("0_0", None)
    write_metadata(spider_copy, records)
    call_command("import_spider", str(spider_copy), project="skin", json=True)
    result = json.loads(capsys.readouterr().out)
    assert len(result["notes"]) == 2
    assert result["notes_total"] == sum(result["note_counts"].values()) == len(records)
    assert result["note_counts"]["context missing at 0_0: shown blank"] >= 1
    assert result["seconds"] > 0 and result["cpu_seconds"] > 0
    summary = ImportJob.objects.get(project=project).summary
    assert summary["notes_total"] == len(records) and len(summary["notes"]) == 2


def test_bad_records_past_the_kept_ones_are_counted_everywhere(project, spider_copy, capsys,
                                                               monkeypatch, client, users):
    """A metadata.json of bad records only (a wrong folder, or hostile input) keeps a bounded
    list; the count stays exact on the command's output, the job and the project page."""
    from django.urls import reverse

    from annotations.importing import report as report_module
    from annotations.models import ImportJob

    monkeypatch.setattr(report_module, "SKIPS_KEPT", 2)
    records = metadata(spider_copy)
    write_metadata(spider_copy, [{**r, "split": "validation"} for r in records])
    call_command("import_spider", str(spider_copy), project="skin", json=True)
    result = json.loads(capsys.readouterr().out)
    assert result["skipped_total"] == len(records) > 2 and len(result["skipped"]) == 2
    assert result["skipped"][0]["reason"] == "split is 'validation', expected 'train' or 'test'"
    summary = ImportJob.objects.get(project=project).summary
    assert summary["skipped_total"] == len(records) and len(summary["skipped"]) == 2

    call_command("import_spider", str(spider_copy), project="skin")  # as a user reads it
    err = capsys.readouterr().err
    assert err.count("skipped record ") == 2
    assert f"... and {len(records) - 2} more bad record(s), not listed" in err

    client.force_login(users["viewer"])
    html = client.get(reverse("project-detail", args=[project.slug])).content.decode()
    assert f"0 new, 0 existing, {len(records)} skipped" in html


def test_link_keeps_files_in_place(project, sample_spider, settings):
    import_spider(project, sample_spider, link=True)
    tile = Tile.objects.filter(project=project).first()
    assert tile.linked and Path(tile.file).is_file()
    assert Path(tile.file).is_relative_to(sample_spider.resolve())
    assert not (Path(settings.MEDIA_ROOT) / "tiles").exists()


def test_copied_tiles_are_content_addressed(project, sample_spider, settings):
    import_spider(project, sample_spider)
    tile = Tile.objects.filter(project=project).first()
    stored = Path(settings.MEDIA_ROOT) / tile.file
    import hashlib
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == tile.sha256
    assert not tile.linked


def test_class_names_are_kept_byte_for_byte(project, spider_copy):
    records = metadata(spider_copy)
    records[0]["class"] = "Kaposi\u2019s sarcoma"
    records[1]["class"] = "Mercel cell carcinoma"
    write_metadata(spider_copy, records)
    report = import_spider(project, spider_copy, organ="skin")
    assert "Kaposi\u2019s sarcoma" in report.classes
    assert len(report.classes) == 24  # the organ's canonical list
    assert LabelClass.objects.filter(project=project, name="Kaposi\u2019s sarcoma").exists()
    assert not LabelClass.objects.filter(project=project, name="Kaposi's sarcoma").exists()
    patch = Patch.objects.get(project=project, image_name=records[0]["image_name"])
    assert patch.original_label.name.encode() == "Kaposi\u2019s sarcoma".encode()


def test_unknown_class_for_organ_is_skipped(project, spider_copy):
    records = metadata(spider_copy)
    records[3]["class"] = "Kaposi's sarcoma"  # ASCII apostrophe: not SPIDER's spelling
    write_metadata(spider_copy, records)
    report = import_spider(project, spider_copy, organ="skin")
    [bad] = report.skipped
    assert bad.index == 3 and "unknown class" in bad.reason and "Kaposi's sarcoma" in bad.reason


def _damage(root: Path) -> dict[int, str]:
    """Break records in every way the importer must catch; returns index -> expected reason."""
    records = metadata(root)
    images = root / "images"
    expected = {}

    # 1: corrupt centre image (bytes zeroed inside a copy used by this record only)
    data = bytearray((images / records[1]["image_name"]).read_bytes())
    data[len(data) // 2: len(data) // 2 + 40] = b"\x00" * 40
    (images / "corrupt.png").write_bytes(bytes(data))
    records[1]["image_name"] = "corrupt.png"
    expected[1] = "corrupt"
    # 2: missing centre file
    records[2]["image_name"] = "does_not_exist.png"
    expected[2] = "not found"
    # 3: a name pointing outside the dataset folder
    records[3]["image_name"] = "../metadata.json"
    expected[3] = "outside"
    # 4: duplicate image_name of record 0
    records[4]["image_name"] = records[0]["image_name"]
    expected[4] = "duplicate"
    # 5: wrong image size (centre replaced by a 200x200 image under a new name)
    Image.new("RGB", (200, 200), "white").save(images / "small.png")
    records[5]["image_name"] = "small.png"
    expected[5] = "200x200"
    # 6: malformed record (no split)
    del records[6]["split"]
    expected[6] = "split"
    # 7: not an object at all
    records[7] = ["not", "a", "record"]
    expected[7] = "not an object"
    # 8: decompression bomb: a PNG header claiming a huge image
    bomb = io.BytesIO()
    Image.new("1", (20000, 20000)).save(bomb, format="PNG")
    (images / "bomb.png").write_bytes(bomb.getvalue())
    records[8]["image_name"] = "bomb.png"
    expected[8] = "20000x20000"  # refused from the header, never inflated
    # 9: a context tile that is truncated
    context_name = "truncated.png"
    full = (images / records[0]["image_name"]).read_bytes()
    (images / context_name).write_bytes(full[: len(full) // 3])
    records[9]["context_info"]["0_0"] = context_name
    expected[9] = "corrupt"
    write_metadata(root, records)
    return expected


def test_bad_records_are_skipped_and_reported(project, spider_copy):
    expected = _damage(spider_copy)
    total = len(metadata(spider_copy))
    report = import_spider(project, spider_copy)
    reasons = {bad.index: bad for bad in report.skipped}
    assert set(reasons) == set(expected)
    for index, words in expected.items():
        assert words in reasons[index].reason.lower(), (index, reasons[index])
        assert reasons[index].file  # the file is named
    assert reasons[9].file == "truncated.png"
    assert report.patches_created == total - len(expected)
    assert Patch.objects.filter(project=project).count() == total - len(expected)


def test_strict_rolls_back_everything(project, spider_copy, settings):
    _damage(spider_copy)
    with pytest.raises(ImportAborted) as caught:
        import_spider(project, spider_copy, strict=True)
    assert len(caught.value.report.skipped) == 9
    assert Patch.objects.count() == 0
    assert Tile.objects.count() == 0
    assert LabelClass.objects.count() == 0
    tiles_dir = Path(settings.MEDIA_ROOT) / "tiles"
    assert not tiles_dir.exists() or not any(p.is_file() for p in tiles_dir.rglob("*"))


def test_command_prints_json_report(project, spider_copy, capsys):
    expected = _damage(spider_copy)
    call_command("import_spider", str(spider_copy), project="skin", json=True)
    result = json.loads(capsys.readouterr().out)
    assert set(result) >= {"records", "patches_created", "patches_existing", "tiles_created",
                           "tiles_reused", "classes", "slides", "skipped"}
    assert sorted(s["index"] for s in result["skipped"]) == sorted(expected)
    assert all(set(s) == {"index", "file", "reason"} for s in result["skipped"])


def test_command_strict_fails_with_nonzero_exit(project, spider_copy):
    _damage(spider_copy)
    with pytest.raises(CommandError, match="nothing was imported"):
        call_command("import_spider", str(spider_copy), project="skin", strict=True)
    assert Patch.objects.count() == 0


def test_not_a_dataset_is_a_clear_error(project, tmp_path):
    with pytest.raises(CommandError, match=r"no metadata\.json"):
        call_command("import_spider", str(tmp_path), project="skin")


def test_symlink_out_of_the_dataset_is_refused(project, spider_copy, tmp_path):
    secret = tmp_path / "secret.png"
    secret.write_bytes((spider_copy / "images" / metadata(spider_copy)[0]["image_name"])
                       .read_bytes())
    (spider_copy / "images" / "link.png").symlink_to(secret)
    records = metadata(spider_copy)
    records[2]["image_name"] = "link.png"
    write_metadata(spider_copy, records)
    report = import_spider(project, spider_copy, link=True)
    [bad] = report.skipped
    assert bad.index == 2 and bad.file == "link.png" and "outside" in bad.reason
    assert not Tile.objects.filter(file=str(secret)).exists()


def test_a_file_past_the_size_limit_is_refused_unread(project, spider_copy, settings):
    """A 1 TiB (sparse) file named as a tile: refused from its size alone. Read, it would
    take all the memory of the file-check process (which then died and failed the import)."""
    huge = spider_copy / "images" / "huge.png"
    with open(huge, "wb") as handle:
        handle.truncate(1 << 40)
    records = metadata(spider_copy)
    records[3]["image_name"] = "huge.png"
    write_metadata(spider_copy, records)
    report = import_spider(project, spider_copy, link=True)
    [bad] = report.skipped
    assert (bad.index, bad.file) == (3, "huge.png")
    assert bad.reason == f"file is {1 << 40} bytes, more than {settings.SPIDER_MAX_TILE_BYTES}"
    assert report.patches_created == len(records) - 1


def test_symlink_inside_the_images_folder_is_followed(project, spider_copy):
    """Plain files are opened without following links; a link that stays inside images/ is
    resolved, read, and linked by its real path."""
    records = metadata(spider_copy)
    images = (spider_copy / "images").resolve()
    name = records[2]["image_name"]
    (images / name).rename(images / "real.png")
    (images / name).symlink_to(images / "real.png")
    report = import_spider(project, spider_copy, link=True)
    assert report.skipped == [] and report.patches_created == len(records)
    patch = Patch.objects.get(project=project, image_name=name)
    assert Tile.objects.get(pk=patch.centre_tile_id).file == str(images / "real.png")


def test_unknown_organ_creates_nothing(db, sample_spider):
    from annotations.models import Project

    with pytest.raises(CommandError, match="unknown organ 'liver'"):
        call_command("import_spider", str(sample_spider), project="new", organ="liver")
    assert not Project.objects.filter(slug="new").exists()


def test_read_file_returns_every_byte_even_when_the_file_grew(tmp_path, monkeypatch):
    """The importers' one-read file reader: the whole file at any size, and the rest of a
    file that grew between its fstat and its read (told here by a smaller fstat size)."""
    import os
    import stat

    from annotations.localfiles import read_file

    for size in (0, 1, 54_321, 3 << 20):
        path = tmp_path / f"f{size}"
        path.write_bytes(os.urandom(size))
        assert read_file(path) == path.read_bytes()
    os.mkfifo(tmp_path / "fifo")  # would block an open for reading until written to
    with pytest.raises(OSError, match="not a regular file"):
        read_file(tmp_path / "fifo")
    real_fstat = os.fstat

    class Shrunk:
        st_size = 10
        st_mode = stat.S_IFREG | 0o644

    monkeypatch.setattr(os, "fstat", lambda fd: Shrunk if fd > 2 else real_fstat(fd))
    assert read_file(path) == path.read_bytes()
    with pytest.raises(FileNotFoundError):
        read_file(tmp_path / "missing")
    with pytest.raises(IsADirectoryError):
        read_file(tmp_path)
