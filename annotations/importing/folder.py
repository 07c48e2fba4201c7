"""Import class-per-folder images (ImageFolder layout, e.g. CRC-100K) as patches without context.

Layout: ``ROOT/<class>/<image>`` or ``ROOT/train/<class>/<image>`` and ``ROOT/test/...``.
Such datasets carry no slide ids, so each split gets one stand-in slide, named so.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from django.conf import settings

from annotations.models import ImportJob, Patch, Project
from annotations.models.patches import CENTRE_INDEX, GRID_SIZE

from .errors import SourceError
from .filecheck import Layout
from .report import ImportReport
from .roots import confinement
from .run import Progress, finish_job, import_run, job_progress, no_progress, start_job
from .spider import batched
from .writer import FetchedFile, ProjectWriter

# A batch's images not imported yet: name relative to the folder -> (index, split, class).
Todo = dict[str, tuple[int, str, str]]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"}
SPLITS = ("train", "test")


def stand_in_slide(split: str) -> str:
    return f"(no slide id: {split or 'unsplit'})"


def iter_images(root: Path) -> Iterator[tuple[str, str, Path]]:
    """(split, class name, file) for every image, in a stable (sorted) order."""
    split_dirs = [(s, root / s) for s in SPLITS if (root / s).is_dir()]
    if not split_dirs:
        split_dirs = [("", root)]
    for split, folder in split_dirs:
        for class_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
            for file in sorted(class_dir.rglob("*")):
                if file.is_file() and file.suffix.lower() in IMAGE_SUFFIXES:
                    yield split, class_dir.name, file


def import_folder(project: Project, path: str | Path, *, strict: bool = False,
                  link: bool = False, job: ImportJob | None = None,
                  progress: Progress = no_progress,
                  roots: Sequence[Path] | None = None) -> ImportReport:
    """Import class-per-folder images; with ``roots`` (from the browser) the folder must
    resolve inside one of them (each file must resolve inside the folder in any case)."""
    root = Path(path)
    report = ImportReport()
    if (confine := confinement(roots)) is not None:
        try:
            root = confine.check(root, str(root))
        except SourceError as exc:
            finish_job(job, report, error=str(exc))
            raise
    total = sum(1 for _ in iter_images(root)) if root.is_dir() else 0
    if total == 0:
        error = SourceError(f"{root}: no images found in class folders")
        finish_job(job, report, error=str(error))  # recorded on the job, like any failure
        raise error
    writer = ProjectWriter(project, job, report)
    resolved_root = root.resolve()
    start_job(job, total, "images")
    tick = job_progress(job, progress)

    layout = Layout(str(resolved_root), link=link, max_bytes=settings.SPIDER_MAX_TILE_BYTES,
                    expected_size=224, missing="cannot read: {error}",
                    unreadable="cannot read: {error}",
                    outside="file points outside the dataset folder (symlink)",
                    check_names=False)

    def fetch(missing: list[str]) -> list[FetchedFile]:
        return writer.check_files_later(layout, missing)()

    done = 0
    try:
        with import_run(writer, strict=strict) as batch_context:
            for batch in batched(enumerate(iter_images(root)), settings.SPIDER_IMPORT_BATCH):
                names = {str(file.relative_to(root)): (i, split, label)
                         for i, (split, label, file) in batch}
                with batch_context():
                    report.records += len(batch)
                    existing = writer.existing_patches(set(names))
                    todo: Todo = {n: v for n, v in names.items() if n not in existing}
                    report.patches_existing += len(names) - len(todo)
                    tiles = writer.resolve_tiles(set(todo), fetch)
                    slides = writer.slide_ids({stand_in_slide(v[1]) for v in todo.values()})
                    patches: list[Patch] = []
                    for name, (index, split, label) in todo.items():
                        tile = tiles[name]
                        if isinstance(tile, str):
                            report.skip(index, name, tile)
                            continue
                        grid: list[int | None] = [None] * (GRID_SIZE * GRID_SIZE)
                        grid[CENTRE_INDEX] = tile
                        patches.append(writer.new_patch(
                            slide_id=slides[stand_in_slide(split)], split=split,
                            image_name=name, grid=grid, label_id=writer.label_id(label)))
                    writer.create_patches(patches)
                done += len(batch)
                tick(done, total, "images")
    except Exception as exc:
        finish_job(job, report, error=str(exc))
        raise
    finish_job(job, report)
    return report
