"""Hugging Face `datasets` export: parquet shards with embedded image bytes and a card."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import pyarrow as pa
from django.db.models import QuerySet

from annotations.importing.run import Progress, no_progress
from annotations.importing.spider import batched
from annotations.models import Patch, Project

from .arrow_columns import column
from .background import WriteBehind
from .card import SplitInfo, render_card
from .features import FeatureSpec, arrow_schema, feature_spec, image_column
from .files import all_or_nothing, sha256_file, snapshot_id
from .images import ImageReader, Reading
from .parquet import ROW_GROUP, SHARD_BYTES, ShardWriter
from .result import ExportResult
from .rows import ClassList, ExportRow, iter_rows
from .selection import ExportFilter, exportable, split_name
from .summary import SnapshotStats

IMAGE_COLUMNS = {"image", "context"}


def image_array(data: list[bytes]) -> pa.StructArray:
    """The image column of bytes made here (the 1120x1120 contexts)."""
    return image_column(column(data, pa.binary()))


def build_table(rows: Sequence[ExportRow], centres: Reading,
                spec: list[FeatureSpec], schema: pa.Schema, classes: ClassList,
                reader: ImageReader) -> pa.Table:
    columns: dict[str, list | pa.Array | pa.ChunkedArray] = {
        "image": centres.result(),
        "label": [classes.index(r.current_label) for r in rows],
        "original_label": [classes.index(r.original_label) for r in rows],
        "patch_id": [r.patch_id for r in rows],
        "image_name": [r.image_name for r in rows],
        "slide_id": [r.slide for r in rows],
        "slide_x": [r.slide_x for r in rows],
        "slide_y": [r.slide_y for r in rows],
        "review_status": [r.status for r in rows],
        "n_reviews": [r.stats.n_reviews for r in rows],
        "agreement": [r.stats.agreement for r in rows],
        "model_version": [r.opinion.model_version if r.opinion else None for r in rows],
        "model_confidence": [r.opinion.confidence if r.opinion else None for r in rows],
    }
    if any(f.name == "context" for f in spec):
        columns["context"] = image_array(reader.contexts(rows))
    arrays = [columns[f.name] if isinstance(columns[f.name], pa.Array | pa.ChunkedArray)
              else column(columns[f.name], schema.field(f.name).type) for f in spec]
    return pa.Table.from_arrays(arrays, schema=schema)


def export_hf(project: Project, out: Path, *, export_filter: ExportFilter | None = None,
              context: bool = False, progress: Progress = no_progress,
              shard_bytes: int = SHARD_BYTES, workers: int | None = None) -> ExportResult:
    """Write ``out`` as a Hub dataset repo: ``data/<split>-*.parquet`` and ``README.md``.

    All or nothing: whatever stops the export (an unreadable tile, a failed write, a
    cancelled job) removes what it had written, leaving ``out`` as it was."""
    export_filter = export_filter or ExportFilter()
    patches, splits = exportable(project, export_filter)
    with all_or_nothing(out, "data", "README.md") as folder:
        return write_export(project, folder, patches, splits, export_filter, context,
                            progress, shard_bytes, workers)


def write_export(project: Project, out: Path, patches: QuerySet[Patch], splits: dict[str, int],
                 export_filter: ExportFilter, context: bool, progress: Progress,
                 shard_bytes: int, workers: int | None) -> ExportResult:
    """The rows and tables are made on this thread (the database connection is its own);
    tile reads run one group ahead on the reader's pool, parquet writes behind it on the
    writer's thread and sha256 behind those on the hasher's, so none waits for another."""
    data = out / "data"
    data.mkdir()
    classes = ClassList.of(project)
    spec = feature_spec(context)
    schema = arrow_schema(spec, classes.names)
    stats = SnapshotStats(classes)
    total, done = sum(splits.values()), 0
    progress(0, total, "patches")
    infos: list[SplitInfo] = []
    files: dict[str, str] = {}
    with (ImageReader(workers) as reader, WriteBehind() as writer,
          ThreadPoolExecutor(1, thread_name_prefix="export-hash") as hasher):
        for split in splits:
            shards = ShardWriter(data, split_name(split), schema, IMAGE_COLUMNS, shard_bytes,
                                 hasher)
            written = 0
            try:
                rows = iter_rows(project, patches.filter(split=split), grid=context)
                with closing(reader.ahead(batched(rows, ROW_GROUP))) as groups:
                    for group, centres in groups:
                        table = build_table(group, centres, spec, schema, classes, reader)
                        writer.submit(shards.write, table)
                        stats.add(group)
                        written += len(group)
                        done += len(group)
                        progress(done, total, "patches")
                writer.drain()
                paths = shards.close()
            except BaseException:
                writer.stop()  # the running write finishes before its files are removed
                shards.abort()
                raise
            # Counts come from what was written: reviews going on meanwhile cannot make the
            # card disagree with the files.
            infos.append(SplitInfo(split_name(split), written, shards.num_bytes,
                                   sum(p.stat().st_size for p in paths),
                                   tuple(p.relative_to(out).as_posix() for p in paths)))
            files.update({p.relative_to(out).as_posix(): sha for p, sha in paths.items()})
    card = render_card(project, spec, stats, infos, export_filter.describe(), context,
                       snapshot_id(files))
    (out / "README.md").write_text(card, encoding="utf-8")
    files["README.md"] = sha256_file(out / "README.md")
    return ExportResult(stats.as_dict(), dict(sorted(files.items())))
