"""import_folder: class-per-folder images (with and without train/ and test/)."""

from __future__ import annotations

import json

from django.core.management import call_command
from PIL import Image

from annotations.importing import import_folder
from annotations.models import Patch


def build_image_folder(root, sample_spider, with_splits=True):
    tiles = sorted((sample_spider / "images").glob("*.png"))[:12]
    for i, tile in enumerate(tiles):
        split = ("train" if i < 8 else "test") if with_splits else ""
        label = "ADI" if i % 2 else "Kaposi\u2019s sarcoma"
        folder = root / split / label
        folder.mkdir(parents=True, exist_ok=True)
        (folder / tile.name).write_bytes(tile.read_bytes())
    return tiles


def test_folder_import_with_splits(project, sample_spider, tmp_path, capsys):
    build_image_folder(tmp_path / "crc", sample_spider)
    (tmp_path / "crc" / "train" / "ADI" / "broken.png").write_bytes(b"\x89PNG not really")
    Image.new("RGB", (100, 100)).save(tmp_path / "crc" / "test" / "ADI" / "small.png")
    call_command("import_folder", str(tmp_path / "crc"), project="skin", json=True)
    result = json.loads(capsys.readouterr().out)
    assert result["records"] == 14 and result["patches_created"] == 12
    assert sorted(result["classes"]) == sorted(["ADI", "Kaposi\u2019s sarcoma"])
    skipped = {s["file"]: s["reason"] for s in result["skipped"]}
    assert "corrupt" in skipped["train/ADI/broken.png"]
    assert "100x100" in skipped["test/ADI/small.png"]
    patch = Patch.objects.filter(project=project, split="test").first()
    assert patch.grid.count(None) == 24 and patch.grid[12] == patch.centre_tile_id
    assert Patch.objects.filter(project=project, split="train").count() == 8
    again = import_folder(project, tmp_path / "crc")
    assert again.patches_created == 0 and again.patches_existing == 12


def test_folder_import_without_splits(project, sample_spider, tmp_path):
    build_image_folder(tmp_path / "flat", sample_spider, with_splits=False)
    report = import_folder(project, tmp_path / "flat")
    assert report.patches_created == 12
    assert set(Patch.objects.values_list("split", flat=True)) == {""}
