"""import_spider on the downloaded multi-part archive, read as one stream."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from annotations.importing import import_spider
from annotations.models import Patch, Tile


def make_parts(folder: Path, out: Path, part_size: int = 400_000, extra=()) -> list[Path]:
    """Tar ``folder`` as SPIDER-skin/ and split it like ``split -b``: spider-skin.tar.aa, ..."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(folder / "images", arcname="SPIDER-skin/images")
        for name, data in extra:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        tar.add(folder / "metadata.json", arcname="SPIDER-skin/metadata.json")
    data = buffer.getvalue()
    out.mkdir(parents=True, exist_ok=True)
    parts = []
    for i, start in enumerate(range(0, len(data), part_size)):
        suffix = chr(ord("a") + i // 26) + chr(ord("a") + i % 26)
        part = out / f"spider-skin.tar.{suffix}"
        part.write_bytes(data[start:start + part_size])
        parts.append(part)
    return parts


def test_archive_import_matches_folder_import(users, sample_spider, tmp_path):
    from annotations.actions import get_or_create_project

    parts = make_parts(sample_spider, tmp_path / "download")
    assert len(parts) > 2
    from_folder = get_or_create_project("from-folder")
    from_archive = get_or_create_project("from-archive")
    a = import_spider(from_folder, sample_spider)
    b = import_spider(from_archive, tmp_path / "download")
    assert (b.records, b.patches_created, b.tiles_created, b.classes, b.slides) == \
        (a.records, a.patches_created, a.tiles_created, a.classes, a.slides)
    assert b.skipped == []
    def rows(project):
        return sorted(Patch.objects.filter(project=project).values_list(
            "image_name", "centre_tile__sha256", "original_label__name", "split", "slide__name"))
    assert rows(from_folder) == rows(from_archive)
    assert set(Tile.objects.filter(project=from_folder).values_list("sha256", flat=True)) == \
        set(Tile.objects.filter(project=from_archive).values_list("sha256", flat=True))
    again = import_spider(from_archive, tmp_path / "download")
    assert again.patches_created == 0 and again.patches_existing == a.patches_created


def test_archive_members_outside_images_are_never_written(users, sample_spider, tmp_path,
                                                          settings):
    from annotations.actions import get_or_create_project

    evil = [("../../escape.png", b"x" * 10), ("SPIDER-skin/images/../../../etc/x.png", b"y")]
    make_parts(sample_spider, tmp_path / "download", extra=evil)
    report = import_spider(get_or_create_project("p"), tmp_path / "download")
    assert report.skipped == []
    assert not (tmp_path / "escape.png").exists()
    assert not any("escape" in str(p) for p in Path(settings.MEDIA_ROOT).rglob("*"))


def test_truncated_archive_is_a_clear_error(users, sample_spider, tmp_path):
    parts = make_parts(sample_spider, tmp_path / "download")
    parts[-1].unlink()  # a part failed to download
    with pytest.raises(CommandError, match=r"metadata\.json|cannot read archive"):
        call_command("import_spider", str(tmp_path / "download"), project="p")


def test_link_is_refused_for_an_archive(users, sample_spider, tmp_path):
    make_parts(sample_spider, tmp_path / "download")
    with pytest.raises(CommandError, match="--link needs an extracted folder"):
        call_command("import_spider", str(tmp_path / "download"), project="p", link=True)
