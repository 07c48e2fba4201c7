"""The project page, the patch browser (filters, keyset paging) and the patch page."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from PIL import Image

from annotations.models import LabelClass, Patch
from tests.fifos import fifo_in_place


def test_project_page_counts(client, users, imported):
    client.force_login(users["viewer"])
    html = client.get(reverse("project-detail", args=[imported.slug])).content.decode()
    total = Patch.objects.filter(project=imported).count()
    assert f"{total} patches" in html
    for cls in LabelClass.objects.filter(project=imported):
        n = Patch.objects.filter(project=imported, original_label=cls).count()
        assert re.search(rf">{re.escape(cls.name)}</a></td><td class=\"num\">{n}<", html), cls
    train = Patch.objects.filter(project=imported, split="train").count()
    assert re.search(rf">train</a></td><td class=\"num\">{train}<", html)
    assert re.search(rf"Unreviewed</td><td class=\"num\">{total}<", html)
    assert "succeeded" in html  # the import job is listed
    assert f"{total} new, 0 existing, 0 skipped" in html  # a zero is still a number


def test_patch_browser_filters_and_keyset_pages(client, users, imported):
    client.force_login(users["viewer"])
    url = reverse("patch-list", args=[imported.slug])
    cls = LabelClass.objects.filter(project=imported).order_by("index").first()
    expected = list(Patch.objects.filter(project=imported, current_label=cls, split="train")
                    .order_by("id").values_list("id", flat=True))
    seen: list[int] = []
    query = f"?current_label={cls.id}&split=train"
    with CaptureQueriesContext(connection) as queries:
        html = client.get(url + query).content.decode()
    assert len(queries) <= 8  # session, user, project, role, classes/slides, page: no N+1
    while True:
        # each card's link carries the filter (the patch page's previous/next stay in it)
        links = re.findall(r'/patches/(\d+)/\?([^"]*)"', html)
        assert all(f"current_label={cls.id}" in q and "after=" not in q for _, q in links)
        seen += [int(i) for i, _ in links]
        match = re.search(r'id="next-page" href="\?([^"]+)"', html)
        if not match:
            break
        html = client.get(url + "?" + match.group(1).replace("&amp;", "&")).content.decode()
    assert seen == expected


def test_patch_browser_stays_the_same_size_with_many_slides(client, users, imported):
    """The page lists no slide menu: with 500 more slides its queries and size stay put."""
    from annotations.models import Slide

    client.force_login(users["viewer"])
    url = reverse("patch-list", args=[imported.slug])

    def measure() -> tuple[int, int]:
        with CaptureQueriesContext(connection) as queries:
            body = client.get(url).content
        return len(queries), len(body)

    before = measure()
    Slide.objects.bulk_create([Slide(project=imported, name=f"extra-{i}") for i in range(500)])
    after = measure()
    assert after == before
    slide = Slide.objects.filter(project=imported).first()
    html = client.get(url, {"slide": slide.pk}).content.decode()
    assert f'value="{slide.pk}"' in html


def test_patch_page_shows_context_labels_and_history(client, users, imported):
    patch = Patch.objects.filter(project=imported, missing_context=0).first()
    client.force_login(users["viewer"])
    html = client.get(reverse("patch-detail", args=[imported.slug, patch.id])).content.decode()
    tiles = re.findall(r'<img class="cell( centre)?" src="/tiles/(\d+)/"', html)
    assert [int(t[1]) for t in tiles] == patch.grid
    assert [t[0] for t in tiles].count(" centre") == 1 and tiles[12][0] == " centre"
    assert patch.original_label.name in html
    assert "imported with label" in html
    edge = Patch.objects.filter(project=imported, missing_context__gt=0).first()
    html = client.get(reverse("patch-detail", args=[imported.slug, edge.id])).content.decode()
    assert html.count('class="cell blank') == edge.missing_context


def test_a_linked_tile_replaced_by_a_fifo_a_link_or_nothing_is_a_404(
        client, users, project, sample_spider, tmp_path):
    dataset = tmp_path / "linked"
    shutil.copytree(sample_spider, dataset)
    call_command("import_spider", str(dataset), project=project.slug, link=True, json=True,
                 stdout=io.StringIO())
    tile = Patch.objects.filter(project=project).select_related("centre_tile").first().centre_tile
    assert tile.linked
    client.force_login(users["viewer"])
    url = reverse("tile-image", args=[tile.pk])
    with fifo_in_place(Path(tile.file)) as released:
        assert client.get(url).status_code == 404
    assert not released, "serving the tile blocked on the FIFO"
    Path(tile.file).unlink()
    assert client.get(url).status_code == 404
    secret = tmp_path / "secret.txt"  # any file the server can read
    secret.write_text("SECRET_KEY=do-not-serve")
    Path(tile.file).symlink_to(secret)  # the import stored the resolved path: no link there
    assert client.get(url).status_code == 404


def test_a_linked_tiles_folder_swapped_for_a_link_is_not_followed(
        client, users, project, sample_spider, tmp_path):
    """O_NOFOLLOW guards only the last part of a path: with the dataset's images/ replaced by
    a link to a folder holding a file of the same name, the tile URL served that file."""
    dataset = tmp_path / "linked"
    shutil.copytree(sample_spider, dataset)
    call_command("import_spider", str(dataset), project=project.slug, link=True, json=True,
                 stdout=io.StringIO())
    tile = Patch.objects.filter(project=project).select_related("centre_tile").first().centre_tile
    client.force_login(users["viewer"])
    url = reverse("tile-image", args=[tile.pk])
    assert client.get(url).status_code == 200
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / Path(tile.file).name).write_text("SECRET_KEY=do-not-serve")
    (dataset / "images").rename(tmp_path / "images.orig")
    (dataset / "images").symlink_to(outside)
    response = client.get(url)
    assert response.status_code == 404 and b"SECRET" not in response.content


def test_tiles_stored_under_a_media_root_or_a_folder_in_it_that_is_a_link_are_read(
        client, users, project, sample_spider, tmp_path, settings):
    """MEDIA_ROOT may itself be a link (to a volume, say), or an operator may link its tiles/
    folder to another disk: only the server writes there, so stored tiles are refused only
    through a link in their own place, and the tile URL, the export and the embedding
    pipeline all read them."""
    from annotations.exporting import export_hf
    from inference.embedding import tile_path
    from inference.modeling.pipeline import read_tile as decode_for_embedding

    volume, disk = tmp_path / "volume", tmp_path / "bigdisk"
    volume.mkdir()
    disk.mkdir()
    (volume / "tiles").symlink_to(disk)
    (tmp_path / "media-link").symlink_to(volume)
    settings.MEDIA_ROOT = str(tmp_path / "media-link")
    call_command("import_spider", str(sample_spider), project=project.slug, json=True,
                 stdout=io.StringIO())
    tile = Patch.objects.filter(project=project).select_related("centre_tile").first().centre_tile
    assert not tile.linked and tile.file.startswith("tiles/")
    on_disk = disk / tile.file.removeprefix("tiles/")
    assert on_disk.is_file()
    client.force_login(users["viewer"])
    response = client.get(reverse("tile-image", args=[tile.pk]))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == on_disk.read_bytes()
    export_hf(project, tmp_path / "hf")
    assert any((tmp_path / "hf" / "data").iterdir())
    assert decode_for_embedding(tile_path(tile.file, False), 224).shape == (3, 224, 224)


def test_a_linked_tile_named_as_a_page_or_script_is_not_served_as_one(
        client, users, project, sample_spider, tmp_path):
    """Stored XSS through the dataset's file names: the import checks a tile's bytes (a
    valid image), not its name, and a linked tile keeps its name. Served by its extension,
    x.html would be a page of this site and x.js a script its CSP allows ('self')."""
    dataset = tmp_path / "named"
    shutil.copytree(sample_spider, dataset)
    records = json.loads((dataset / "metadata.json").read_text())
    for record, name in zip(records, ["x.html", "x.js", "x.svg"], strict=False):
        with Image.open(dataset / "images" / record["image_name"]) as image:
            unique = image.convert("RGB")  # new content, so a tile of its own under this name
        unique.putpixel((0, 0), (len(name), 0, 0))
        unique.save(dataset / "images" / name, format="PNG")
        record["image_name"] = name
    (dataset / "metadata.json").write_text(json.dumps(records))
    call_command("import_spider", str(dataset), project=project.slug, link=True, json=True,
                 stdout=io.StringIO())
    client.force_login(users["viewer"])
    for name in ("x.html", "x.js", "x.svg"):
        patch = Patch.objects.get(project=project, image_name=name)
        response = client.get(reverse("tile-image", args=[patch.centre_tile_id]))
        assert response.status_code == 200
        assert response["Content-Type"] == "application/octet-stream", name
        assert response["X-Content-Type-Options"] == "nosniff"
        assert b"".join(response.streaming_content).startswith(b"\x89PNG")


def test_tile_image_is_png_and_cacheable(client, users, imported):
    patch = Patch.objects.filter(project=imported).first()
    client.force_login(users["viewer"])
    response = client.get(reverse("tile-image", args=[patch.centre_tile_id]))
    body = b"".join(response.streaming_content)
    assert response["Content-Type"] == "image/png" and body.startswith(b"\x89PNG")
    assert "immutable" in response["Cache-Control"]


def test_the_patch_browser_shows_nothing_for_a_filter_it_cannot_read(client, users, imported):
    """django-filter skips a field it cannot read: ?slide=99999 showed the first page of
    every patch under the form error, as if they matched (found by a browser walk)."""
    client.force_login(users["viewer"])
    url = reverse("patch-list", args=[imported.slug])
    assert client.get(url).content.decode().count('class="patch-card"') > 0
    for query in ("slide=99999", "status=bogus", "current_label=999999"):
        html = client.get(f"{url}?{query}").content.decode()
        assert 'class="patch-card"' not in html, query
        assert "No patches are shown: fix this filter first." in html, query
        assert "Select a valid choice" in html, query
    slide = Patch.objects.filter(project=imported).first().slide
    html = client.get(f"{url}?slide_name={slide.name}").content.decode()
    assert "fix this filter" not in html and "Slide name" in html
    assert html.count('class="patch-card"') == min(
        60, Patch.objects.filter(project=imported, slide=slide).count())
