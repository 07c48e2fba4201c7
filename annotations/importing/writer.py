"""Database side of an import: classes, slides, tiles and patches, written in batches."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from django.conf import settings

from annotations.models import (
    ImportJob,
    LabelClass,
    Patch,
    Project,
    Slide,
    Tile,
    TileName,
)
from annotations.signals import patches_created
from annotations.tilestore import storage_name, store_tile_bytes

from .report import ImportReport
from .validation import CheckedTile, check_tile_bytes

PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
    "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5", "#393b79", "#637939", "#8c6d31", "#843c39",
)
# 1-9 then letters; s, u and x are the review page's skip / unsure / exclude keys.
HOTKEYS = "123456789abcdefghijklmnopqrtvwyz"


FileReader = Callable[[], tuple[bytes | str, str | None]]


@dataclass(frozen=True)
class FetchedFile:
    """A source file after the checks: ``path`` is set when it may be linked in place."""

    name: str
    checked: CheckedTile
    path: str | None = None


class IdBitmap:
    """A growable set of non-negative ids in one bit each, so memory stays flat at 3M tiles."""

    def __init__(self) -> None:
        self._bits = bytearray()

    def add(self, value: int) -> bool:
        """Add ``value``; True when it was not there before."""
        byte, bit = divmod(value, 8)
        if byte >= len(self._bits):
            self._bits.extend(bytes(byte - len(self._bits) + 1 + len(self._bits) // 2))
        mask = 1 << bit
        if self._bits[byte] & mask:
            return False
        self._bits[byte] |= mask
        return True

    def __iter__(self) -> Iterator[int]:
        for byte, bits in enumerate(self._bits):
            if bits:
                for bit in range(8):
                    if bits & (1 << bit):
                        yield byte * 8 + bit

    def __contains__(self, value: int) -> bool:
        byte, bit = divmod(value, 8)
        return byte < len(self._bits) and bool(self._bits[byte] & (1 << bit))


def check_and_store(name: str, data: bytes, *, link_path: str | None,
                    expected_size: int | None, written: list[str]) -> FetchedFile:
    """Check one file's bytes and, unless it is to be linked, store them by content."""
    checked = check_tile_bytes(data, settings.SPIDER_MAX_TILE_BYTES, expected_size)
    if not checked.reason and not link_path:
        stored, new = store_tile_bytes(checked.sha256, data, checked.extension)
        if new:
            written.append(stored)
    # keep only the hash: the bytes are stored (or linked) and must not pile up per batch
    return FetchedFile(name, CheckedTile(None, checked.sha256, checked.reason,
                                         checked.extension), link_path)


class ProjectWriter:
    """Writes one import's rows; keeps the counts of the report it is given."""

    def __init__(self, project: Project, job: ImportJob | None, report: ImportReport, *,
                 allowed_classes: Iterable[str] | None = None) -> None:
        self.project = project
        self.job = job
        self.report = report
        self.written: list[str] = []  # newly stored files, removed again if a strict import aborts
        self.bad_names: dict[str, str] = {}
        self._created = IdBitmap()
        self._seen = IdBitmap()
        self._patches_made = IdBitmap()  # by this run (a resumed job's earlier run differs)
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="import")
        self.classes = dict(project.classes.values_list("name", "id"))
        self.allowed_classes = set(allowed_classes) if allowed_classes is not None else None
        if allowed_classes is not None:
            self.ensure_classes(allowed_classes)
        self._slides: dict[str, int] = {}

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    # Classes and slides
    def ensure_classes(self, names: Iterable[str]) -> None:
        missing = [name for name in names if name not in self.classes]
        if not missing:
            return
        next_index = self.project.classes.count()
        used_keys = set(self.project.classes.values_list("hotkey", flat=True))
        free_keys = [key for key in HOTKEYS if key not in used_keys]
        created = []
        for offset, name in enumerate(missing):
            index = next_index + offset
            created.append(LabelClass(
                project=self.project, name=name, index=index, colour=PALETTE[index % len(PALETTE)],
                hotkey=free_keys[offset] if offset < len(free_keys) else ""))
        for obj in LabelClass.objects.bulk_create(created):
            self.classes[obj.name] = obj.id

    def class_problem(self, name: str) -> str:
        """'' when records of class ``name`` may be imported, else why not."""
        if self.allowed_classes is None or name in self.allowed_classes:
            return ""
        return (f"unknown class {name!r}: not one of the project's {len(self.allowed_classes)} "
                f"{self.project.organ or ''} classes".replace("  ", " "))

    def label_id(self, name: str) -> int:
        if name not in self.classes:
            self.ensure_classes([name])
        return self.classes[name]

    def slide_ids(self, names: set[str]) -> dict[str, int]:
        missing = names - self._slides.keys()
        if missing:
            found = dict(Slide.objects.filter(project=self.project, name__in=missing)
                         .values_list("name", "id"))
            new = [Slide(project=self.project, name=name)
                   for name in sorted(missing - found.keys())]
            for slide in Slide.objects.bulk_create(new):
                found[slide.name] = slide.id
            self._slides.update(found)
            if len(self._slides) > 100_000:  # bounded cache; the database holds the truth
                self._slides = found
        return {name: self._slides[name] for name in names}

    # Files and tiles
    def fetch_parallel(self, items: Iterable[tuple[str, FileReader]],
                       expected_size: int | None) -> list[FetchedFile]:
        """Read, check and store files on the thread pool (I/O and hashing release the GIL).

        Each item is (name, reader) where reader returns (bytes or a reason, link path).
        """
        def work(item: tuple[str, FileReader]) -> FetchedFile:
            name, reader = item
            data, link_path = reader()
            if isinstance(data, str):
                return FetchedFile(name, CheckedTile(None, "", data))
            return check_and_store(name, data, link_path=link_path,
                                   expected_size=expected_size, written=self.written)

        return list(self._pool.map(work, items))

    def register_files(self, files: list[FetchedFile]) -> dict[str, int]:
        """Create tiles and names for checked files; bad ones are remembered by name."""
        good = []
        for fetched in files:
            if fetched.checked.reason:
                self.bad_names[fetched.name] = fetched.checked.reason
            else:
                good.append(fetched)
        if not good:
            return {}
        shas = {f.checked.sha256 for f in good}
        tile_ids = dict(Tile.objects.filter(project=self.project, sha256__in=shas)
                        .values_list("sha256", "id"))
        new_tiles: dict[str, Tile] = {}
        for fetched in good:
            sha = fetched.checked.sha256
            if sha in tile_ids or sha in new_tiles:
                continue
            if fetched.path:
                file, linked = fetched.path, True
            else:
                file, linked = storage_name(sha, fetched.checked.extension), False
            new_tiles[sha] = Tile(project=self.project, sha256=sha, file=file, linked=linked,
                                  name=fetched.name)
        for tile in Tile.objects.bulk_create(new_tiles.values()):
            tile_ids[tile.sha256] = tile.id
            self._created.add(tile.id)
        by_name = {f.name: tile_ids[f.checked.sha256] for f in good}
        TileName.objects.bulk_create(
            [TileName(project=self.project, name=name, tile_id=tile_id)
             for name, tile_id in by_name.items()],
            ignore_conflicts=True)
        return by_name

    def resolve_tiles(self, names: set[str],
                      fetch: Callable[[list[str]], list[FetchedFile]]) -> dict[str, int | str]:
        """Map each name to its tile id, or to the reason it cannot be used."""
        result: dict[str, int | str] = {}
        lookup = []
        for name in names:
            if name in self.bad_names:
                result[name] = self.bad_names[name]
            else:
                lookup.append(name)
        known = dict(TileName.objects.filter(project=self.project, name__in=lookup)
                     .values_list("name", "tile_id"))
        result.update(known)
        missing = [name for name in lookup if name not in known]
        if missing:
            fetched = fetch(missing)
            result.update(self.register_files(fetched))
            for f in fetched:
                if f.checked.reason:
                    result[f.name] = f.checked.reason
        for value in result.values():
            if isinstance(value, int) and self._seen.add(value):
                if value in self._created:
                    self.report.tiles_created += 1
                else:
                    self.report.tiles_reused += 1
        return result

    # Patches
    def existing_patches(self, image_names: set[str]) -> dict[str, int]:
        """image_name -> id of the patches already in the project."""
        return dict(Patch.objects.filter(project=self.project, image_name__in=image_names)
                    .values_list("image_name", "id"))

    def made_by_this_run(self, patch_id: int) -> bool:
        """Whether this run created the patch (then a second record naming it is a
        duplicate; a patch left by an earlier, interrupted run of the job merely exists)."""
        return patch_id in self._patches_made

    def create_patches(self, patches: list[Patch]) -> None:
        """Insert ``patches`` and announce them (the model's queue scores add their rows)."""
        created = Patch.objects.bulk_create(patches)
        for patch in created:
            self._patches_made.add(patch.pk)
        self.report.patches_created += len(patches)
        if created:
            patches_created.send(sender=Patch, project_id=self.project.pk,
                                 patch_ids=[p.pk for p in created])

    def new_patch(self, *, slide_id: int, split: str, image_name: str, grid: list[int | None],
                  label_id: int | None) -> Patch:
        centre = grid[len(grid) // 2]
        if centre is None:
            raise ValueError(f"{image_name}: a patch needs its centre tile")
        return Patch(project=self.project, slide_id=slide_id, split=split, image_name=image_name,
                     centre_tile_id=centre, grid=grid,
                     missing_context=sum(1 for tile in grid if tile is None),
                     original_label_id=label_id, current_label_id=label_id,
                     import_job=self.job)

    def tiles_created(self) -> int:
        """Tiles this run added to the project (not counting ones it found there)."""
        return sum(1 for _ in self._created)

    def prune_unreferenced(self) -> int:
        """Drop tiles this import created that no record uses (an archive holds every image
        of the dataset, including ones no record points to)."""
        unused = [tile_id for tile_id in self._created if tile_id not in self._seen]
        for start in range(0, len(unused), 5000):
            Tile.objects.filter(id__in=unused[start:start + 5000]).delete()
        return len(unused)

    def finish(self) -> None:
        self.report.classes = list(self.project.classes.order_by("index")
                                   .values_list("name", flat=True))
        self.report.slides = self.project.slides.count()
