"""The Hugging Face export's threads: a failed tile read or parquet write, or a stop between
row groups, ends the export with a clear error and leaves no files; the files do not depend
on the number of reader threads or on where tiles are stored; the Arrow columns it builds
without ``pa.array`` hold what ``pa.array`` would."""

from __future__ import annotations

import errno
import hashlib
import io
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.test import override_settings

from annotations.exporting import ExportError, export_hf, hf, images
from annotations.exporting.arrow_columns import FileReadError, binary_from_files, column
from annotations.lifecycle import JobCancelled
from annotations.models import ExportJob, Patch, Tile
from tests.fifos import fifo_in_place
from tests.test_export_hf import run_export


def test_an_unreadable_tile_fails_the_export_naming_it_and_leaves_nothing(imported_4, tmp_path):
    # The last patch of the test split, written after the whole train split is on disk.
    patch = (Patch.objects.filter(project=imported_4, split="test").select_related("centre_tile")
             .order_by("-id").first())
    default_storage.delete(patch.centre_tile.file)
    out = tmp_path / "hf"
    with pytest.raises(CommandError, match=(
            f"patch {patch.pk} \\({patch.image_name}\\): cannot read its tile "
            f"{patch.centre_tile.file}: No such file or directory")):
        run_export("--project", imported_4.slug, "--out", str(out))
    assert not out.exists()  # neither the train shards nor the test shard's partial file
    job = ExportJob.objects.get()
    assert job.status == ExportJob.Status.FAILED and patch.image_name in job.error


def test_a_tile_rewritten_while_it_is_read_fails_naming_it(imported_4, tmp_path, monkeypatch):
    """Each chunk of tiles is sized, then read: a file that grew in between (rewritten under
    a --link import, say) is an error naming it, not a tile cut short."""
    patch = (Patch.objects.filter(project=imported_4, split="train")
             .select_related("centre_tile").order_by("id").first())
    path = default_storage.path(patch.centre_tile.file)
    allocate = pa.allocate_buffer

    def rewrite_then_allocate(size, *args, **kwargs):
        with open(path, "ab") as handle:
            handle.write(b"more")
        return allocate(size, *args, **kwargs)

    monkeypatch.setattr(pa, "allocate_buffer", rewrite_then_allocate)
    out = tmp_path / "hf"
    with pytest.raises(CommandError, match=(
            f"patch {patch.pk} \\({patch.image_name}\\): cannot read its tile "
            f"{patch.centre_tile.file}: it changed while it was read")):
        run_export("--project", imported_4.slug, "--out", str(out))
    assert not out.exists()


def test_a_tile_replaced_by_a_fifo_fails_the_export_instead_of_waiting(imported_4, tmp_path):
    patch = (Patch.objects.filter(project=imported_4, split="test").select_related("centre_tile")
             .order_by("id").first())
    out = tmp_path / "hf"
    with (fifo_in_place(Path(default_storage.path(patch.centre_tile.file))) as released,
          pytest.raises(CommandError, match=(
              f"patch {patch.pk} \\({patch.image_name}\\): cannot read its tile "
              f"{patch.centre_tile.file}: not a regular file"))):
        run_export("--project", imported_4.slug, "--out", str(out))
    assert not released, "the export blocked on the FIFO"
    assert not out.exists()


def a_neighbour_only_one_patch_needs(project) -> tuple[Patch, Tile]:
    """A context tile (not any patch's centre) in exactly one patch's grid."""
    patches = list(Patch.objects.filter(project=project).order_by("id"))
    centres = {p.centre_tile_id for p in patches}
    needed: dict[int, list[Patch]] = {}
    for patch in patches:
        for tile in set(patch.grid) - {None, patch.centre_tile_id}:
            needed.setdefault(tile, []).append(patch)
    tile, (patch,) = next((t, ps) for t, ps in needed.items()
                          if len(ps) == 1 and t not in centres)
    return patch, Tile.objects.get(pk=tile)


@pytest.mark.parametrize("damage", ["deleted", "not an image"])
def test_an_unreadable_context_tile_fails_the_composite_export_naming_the_patch(
        imported_4, tmp_path, damage):
    patch, tile = a_neighbour_only_one_patch_needs(imported_4)
    if damage == "deleted":
        default_storage.delete(tile.file)
        reason = "No such file or directory"
    else:
        Path(default_storage.path(tile.file)).write_bytes(b"not a PNG at all")
        reason = "not an image Pillow can read"
    out = tmp_path / "hf"
    with pytest.raises(CommandError, match=(
            f"patch {patch.pk} \\({patch.image_name}\\): cannot read the tile "
            f"{tile.file} in its context: {reason}")):
        run_export("--project", imported_4.slug, "--out", str(out), "--context", "composite")
    assert not out.exists()
    job = ExportJob.objects.get()
    assert job.status == ExportJob.Status.FAILED and patch.image_name in job.error


def test_a_linked_datasets_folder_swapped_for_a_link_fails_the_export(
        project, sample_spider_4, tmp_path):
    dataset = tmp_path / "linked"
    shutil.copytree(sample_spider_4, dataset)
    call_command("import_spider", str(dataset), project=project.slug, link=True, json=True,
                 stdout=io.StringIO())
    outside = tmp_path / "outside"
    shutil.copytree(dataset / "images", outside)  # the same names; any files would do
    (dataset / "images").rename(tmp_path / "images.orig")
    (dataset / "images").symlink_to(outside)
    first = (Patch.objects.filter(project=project, split="train").select_related("centre_tile")
             .order_by("id").first())  # the train split is written first
    out = tmp_path / "hf"
    with pytest.raises(CommandError, match=(
            f"patch {first.pk} \\({first.image_name}\\): cannot read its tile "
            f"{first.centre_tile.file}: reached through a symbolic link")):
        run_export("--project", project.slug, "--out", str(out))
    assert not out.exists()


def shard_digests(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((folder / "data").iterdir())}


def test_the_files_do_not_depend_on_the_reader_threads_or_the_storage(imported, tmp_path,
                                                                        monkeypatch, settings):
    """Parquet pages follow the image column's chunks, so the chunks are fixed in size: one
    reader thread or four, tiles on disk or in a store without local paths, same bytes."""
    monkeypatch.setattr(hf, "ROW_GROUP", 5)
    monkeypatch.setattr(images, "CHUNK", 2)  # row groups of 3 chunks, the last one short
    export_hf(imported, tmp_path / "one", workers=1)
    export_hf(imported, tmp_path / "four", workers=4)
    assert shard_digests(tmp_path / "one") == shard_digests(tmp_path / "four")

    stored = {p.centre_tile.file: default_storage.open(p.centre_tile.file).read()
              for p in Patch.objects.filter(project=imported).select_related("centre_tile")}
    with override_settings(STORAGES={
            "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}):
        for name, data in stored.items():
            assert default_storage.save(name, ContentFile(data)) == name
            (settings.MEDIA_ROOT / name).unlink()  # the bytes are in the store only
        export_hf(imported, tmp_path / "remote", workers=2)
    assert shard_digests(tmp_path / "remote") == shard_digests(tmp_path / "one")
    images_in = pq.read_table(tmp_path / "one" / "data").column("image").to_pylist()
    assert sorted(i["bytes"] for i in images_in) == sorted(stored[p.centre_tile.file] for p in
        Patch.objects.filter(project=imported).select_related("centre_tile"))


def test_a_failed_write_surfaces_in_the_export_naming_the_shard(imported, tmp_path, monkeypatch):
    """The disk fills up on the writer's thread while rows are still being read: the error
    reaches the caller at its next row group and every file written is removed."""
    monkeypatch.setattr(hf, "ROW_GROUP", 2)  # many row groups from the small sample
    calls = []
    write_table = pq.ParquetWriter.write_table

    def fill_up(self, table, row_group_size=None):
        calls.append(table.num_rows)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        write_table(self, table, row_group_size=row_group_size)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", fill_up)
    out = tmp_path / "hf"
    out.mkdir()  # an empty folder given by the user stays, empty
    with pytest.raises(ExportError, match=r"writing train shard 0 \(\.train-00000\.parquet"
                                          r"\.partial\) failed: .*No space left on device"):
        export_hf(imported, out)
    assert len(calls) == 3  # the rows queued behind the failed write were not written
    assert list(out.iterdir()) == []


def test_an_export_stopped_between_row_groups_leaves_nothing(imported, tmp_path, monkeypatch):
    """As when the job is cancelled: the progress call raises after a few row groups."""
    monkeypatch.setattr(hf, "ROW_GROUP", 2)
    calls = []

    def cancel(done, total, unit):
        calls.append(done)
        if len(calls) == 4:
            raise JobCancelled

    with pytest.raises(JobCancelled):
        export_hf(imported, tmp_path / "hf", progress=cancel)
    assert not (tmp_path / "hf").exists()


@pytest.mark.parametrize(("values", "type_"), [
    ([1, None, 2**40, -3], pa.int64()),
    ([0, 7, None], pa.int32()),
    ([0.5, None, 1 / 3, 0.9], pa.float32()),
    (["a", None, "", "Kaposi\u2019s sarcoma"], pa.string()),
    ([b"\x89PNG", b"", b"\x00" * 9], pa.binary()),
    ([None] * 9, pa.string()),
])
def test_columns_hold_what_pa_array_holds(values, type_):
    built = column(values, type_)
    assert built.type == type_ and built.null_count == values.count(None)
    assert built.equals(pa.array(values, type_)) and built.to_pylist() == pa.array(
        values, type_).to_pylist()


def test_files_read_into_one_buffer_hold_their_bytes(tmp_path):
    contents = [b"\x89PNG\r\n", b"", b"\x00" * 9, bytes(range(256)) * 500]
    for i, data in enumerate(contents):
        (tmp_path / f"{i}.png").write_bytes(data)
    sources = [str(tmp_path / f"{i}.png") for i in range(len(contents))] + [b"given"]
    built = binary_from_files(sources)
    assert built.equals(pa.array([*contents, b"given"], pa.binary()))
    with pytest.raises(FileReadError) as failed:
        binary_from_files([sources[0], str(tmp_path / "gone.png")])
    assert failed.value.position == 1 and failed.value.reason == "No such file or directory"
    with pytest.raises(FileReadError, match="file is 128000 bytes, more than 1000"):
        binary_from_files(sources, max_bytes=1000)
