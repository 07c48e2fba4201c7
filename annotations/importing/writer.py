"""Database side of an import: classes, slides, tiles and patches, written in batches."""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable, Iterator, Sequence
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
)
from annotations.models.projects import CLASS_HOTKEYS
from annotations.signals import patches_created
from annotations.tilestore import storage_name, store_tile_bytes

from .checkers import FileCheckers
from .filecheck import Checked, Layout
from .report import ImportReport
from .rows import PatchRow, TileFile, rows_for
from .validation import CheckedTile, check_tile_bytes

PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
    "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5", "#393b79", "#637939", "#8c6d31", "#843c39",
)


# Files are checked in chunks of this many per pool task or file-check request: one Future
# per file costs more Python than the check itself saves.
FETCH_CHUNK = 64


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


def stored_file(name: str, sha256: str, reason: str, extension: str, link_path: str | None,
                data: bytes | None, written: list[str]) -> FetchedFile:
    """A checked file as a :class:`FetchedFile`; ``data`` (given for a good file that is not
    linked) is stored by content first, and its storage name added to ``written`` when new.
    Only the hash is kept: the bytes must not pile up per batch."""
    if data is not None:
        stored, new = store_tile_bytes(sha256, data, extension)
        if new:
            written.append(stored)
    return FetchedFile(name, CheckedTile(None, sha256, reason, extension), link_path)


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
        self._pool = ThreadPoolExecutor(max_workers=settings.SPIDER_IMPORT_WORKERS,
                                        thread_name_prefix="import")
        self._checkers: FileCheckers[FetchedFile] | None = None
        self.rows = rows_for()
        self.classes = dict(project.classes.values_list("name", "id"))
        self.allowed_classes = set(allowed_classes) if allowed_classes is not None else None
        if allowed_classes is not None:
            self.ensure_classes(allowed_classes)
        self._slides: dict[str, int] = {}

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        if self._checkers is not None:
            self._checkers.close()
            self._checkers = None

    # Classes and slides
    def ensure_classes(self, names: Iterable[str]) -> None:
        missing = [name for name in names if name not in self.classes]
        if not missing:
            return
        next_index = self.project.classes.count()
        used_keys = set(self.project.classes.values_list("hotkey", flat=True))
        free_keys = [key for key in CLASS_HOTKEYS if key not in used_keys]
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
    def check_members(self, members: Sequence[tuple[str, bytes | str]],
                      expected_size: int | None) -> list[FetchedFile]:
        """Check and store an archive's members (each its bytes, or why it is unusable) on
        the thread pool: they are in this process already, so they are not worth sending to
        the file-check processes (hashing releases the GIL)."""
        def work(chunk: Sequence[tuple[str, bytes | str]]) -> list[FetchedFile]:
            done = []
            for name, data in chunk:
                if isinstance(data, str):
                    done.append(FetchedFile(name, CheckedTile(None, "", data)))
                    continue
                checked = check_tile_bytes(data, settings.SPIDER_MAX_TILE_BYTES, expected_size)
                done.append(stored_file(name, checked.sha256, checked.reason,
                                        checked.extension, None,
                                        None if checked.reason else data, self.written))
            return done

        futures = [self._pool.submit(work, members[start:start + FETCH_CHUNK])
                   for start in range(0, len(members), FETCH_CHUNK)]
        return [fetched for future in futures for fetched in future.result()]

    def check_files_later(self, layout: Layout, names: list[str]
                          ) -> Callable[[], list[FetchedFile]]:
        """Start reading and checking ``names`` of ``layout``'s folder in the file-check
        processes (one per worker, started on first use) and return at once; calling the
        result waits for the files. Files not linked are stored as they come back (and listed
        in ``written``, for a strict import's rollback)."""
        if self._checkers is None or self._checkers.layout != layout:
            if self._checkers is not None:
                self._checkers.close()
            self._checkers = FileCheckers(layout, settings.SPIDER_IMPORT_WORKERS,
                                          self._store_checked)
        futures = [self._checkers.submit(names[start:start + FETCH_CHUNK])
                   for start in range(0, len(names), FETCH_CHUNK)]

        def result() -> list[FetchedFile]:
            return [fetched for future in futures for fetched in future.result()]
        return result

    def _store_checked(self, checked: Checked) -> FetchedFile:
        return stored_file(*checked, written=self.written)

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
        tiles = [TileFile(f.name, f.checked.sha256, f.path, True) if f.path else
                 TileFile(f.name, f.checked.sha256,
                          storage_name(f.checked.sha256, f.checked.extension), False)
                 for f in good]
        by_name, created = self.rows.add_tiles(self.project.pk, tiles)
        for tile_id in created:
            self._created.add(tile_id)
        return by_name

    def resolve_tiles(self, names: set[str],
                      fetch: Callable[[list[str]], list[FetchedFile]]) -> dict[str, int | str]:
        """Map each name to its tile id, or to the reason it cannot be used."""
        result, missing = self.look_up_names(names)
        if missing:
            result.update(self.register_fetched(fetch(missing)))
        self.count_tiles(result)
        return result

    def look_up_names(self, names: Iterable[str], pending: Container[str] = ()
                      ) -> tuple[dict[str, int | str], list[str]]:
        """(name -> tile id or why it is unusable, for the names known already; the names
        to fetch). Names in ``pending`` are being fetched for an earlier batch: neither."""
        result: dict[str, int | str] = {}
        lookup = []
        for name in names:
            if name in self.bad_names:
                result[name] = self.bad_names[name]
            elif name not in pending:
                lookup.append(name)
        known = self.rows.known_names(self.project.pk, lookup)
        result.update(known)
        return result, [name for name in lookup if name not in known]

    def register_fetched(self, fetched: list[FetchedFile]) -> dict[str, int | str]:
        """:meth:`register_files`, with the reason of each file that failed its checks."""
        result: dict[str, int | str] = dict(self.register_files(fetched))
        for f in fetched:
            if f.checked.reason:
                result[f.name] = f.checked.reason
        return result

    def count_tiles(self, resolved: dict[str, int | str]) -> None:
        """Count each tile a record of this run uses once, as created or reused."""
        for value in resolved.values():
            if isinstance(value, int) and self._seen.add(value):
                if value in self._created:
                    self.report.tiles_created += 1
                else:
                    self.report.tiles_reused += 1

    # Patches
    def existing_patches(self, image_names: set[str]) -> dict[str, int]:
        """image_name -> id of the patches already in the project."""
        return self.rows.existing_patches(self.project.pk, list(image_names))

    def made_by_this_run(self, patch_id: int) -> bool:
        """Whether this run created the patch (then a second record naming it is a
        duplicate; a patch left by an earlier, interrupted run of the job merely exists)."""
        return patch_id in self._patches_made

    def create_patches(self, patches: list[Patch]) -> None:
        """Insert ``patches`` (made by :meth:`new_patch`) and announce them."""
        self.add_patch_rows([PatchRow(p.slide_id, p.split, p.image_name, p.grid,
                                      p.original_label_id, p.slide_x, p.slide_y)
                             for p in patches])

    def add_patch_rows(self, rows: Sequence[PatchRow]) -> None:
        """Insert ``rows`` and announce them (the model's queue scores add their rows)."""
        job_id = self.job.pk if self.job is not None else None
        ids = self.rows.add_patches(self.project.pk, job_id, rows)
        for patch_id in ids:
            self._patches_made.add(patch_id)
        self.report.patches_created += len(ids)
        if ids:
            patches_created.send(sender=Patch, project_id=self.project.pk, patch_ids=ids)

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
