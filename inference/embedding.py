"""The embedding cache: embed a project's missing tiles in claimed chunks, read vectors back.

Work is claimed with ``SELECT ... FOR UPDATE SKIP LOCKED`` on the tile rows, inside the
transaction that stores the vectors, and the locked rows are re-checked against what was
stored meanwhile (see :func:`_claim`). Two GPU workers therefore embed disjoint chunks, a
worker that dies releases its chunk with its connection, and a chunk is either stored whole
or not at all: the cache never holds a gap or a duplicate.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Iterable, Sequence

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet

from annotations.models import Project, Tile
from annotations.models.patches import GRID_SIZE
from annotations.tilestore import local_file_path
from inference.modeling import Backbone, create_backbone, embed_tiles
from inference.modeling.pipeline import default_device
from inference.models import EmbeddingSpace, TileEmbedding

log = logging.getLogger(__name__)

_backbones: dict[int, Backbone] = {}
_backbones_lock = threading.Lock()


def backbone_for(space: EmbeddingSpace) -> Backbone:
    """The space's backbone, built once per worker process (Hibou-L takes seconds to load)."""
    with _backbones_lock:
        if space.pk not in _backbones:
            built = create_backbone(space.backbone, space.weights_path or None)
            if (built.weights_sha256 or "") != space.weights_sha256:
                raise RuntimeError(
                    f"{space.weights_path}: weights changed since {space} was registered "
                    f"(sha256 {built.weights_sha256})"
                )
            _backbones[space.pk] = built
        return _backbones[space.pk]


def missing_tiles(project: Project, space: EmbeddingSpace) -> QuerySet[Tile]:
    embedded = TileEmbedding.objects.filter(space=space, tile=OuterRef("pk"))
    return Tile.objects.filter(project=project).filter(~Exists(embedded))


def tile_path(tile_file: str, linked: bool) -> str:
    """A local path, every link on it resolved, that a DataLoader worker opens exactly
    (:func:`inference.modeling.pipeline.open_tile_file`): a linked tile's as the import
    resolved it; a stored one's with its folder under MEDIA_ROOT resolved here (an operator
    may link a folder there to another disk, see :func:`annotations.tilestore.opens_exact`),
    once per folder."""
    path = local_file_path(tile_file, linked)
    if path is None:
        raise RuntimeError(
            "embedding reads tiles from a local filesystem; this storage backend has no "
            "local paths (mount it, or import with --link)")
    if linked:
        return path
    folder, name = os.path.split(path)
    return os.path.join(resolved_folder(folder), name)


@functools.lru_cache(maxsize=1 << 16)  # tiles/ab/cd/: 65,536 folders at most
def resolved_folder(folder: str) -> str:
    return os.path.realpath(folder)


def embed_chunk(project: Project, space: EmbeddingSpace, limit: int) -> int:
    """Embed and store up to ``limit`` unclaimed missing tiles; returns how many (0: none left
    that nobody else holds)."""
    backbone = backbone_for(space)
    with transaction.atomic():
        rows = _claim(project, space, limit)
        if not rows:
            return 0
        items = [(tile_id, tile_path(file, linked)) for tile_id, file, linked in rows]
        for ids, vectors in embed_tiles(
            backbone, items, batch_size=settings.SPIDER_EMBED_BATCH,
            num_workers=settings.SPIDER_EMBED_WORKERS, device=inference_device(),
        ):
            TileEmbedding.objects.bulk_create(
                [TileEmbedding(space=space, tile_id=t, vector=v.tobytes())
                 for t, v in zip(ids, vectors, strict=True)],
                ignore_conflicts=True,  # the rows are locked by us; this guards a stale retry
            )
    # Which tiles this worker embedded, as id ranges (a chunk is mostly one or a few runs):
    # what shows that workers sharing a job never embedded the same tile.
    log.info("embedded %d tiles of project %s in space %s: ids %s", len(rows), project.pk,
             space.pk, id_ranges([tile_id for tile_id, _, _ in rows]))
    return len(rows)


def id_ranges(ids: Sequence[int]) -> str:
    """Sorted ids as ``"1-24,30,32-40"``."""
    runs: list[list[int]] = []
    for i in sorted(ids):
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ",".join(f"{a}-{b}" if a != b else str(a) for a, b in runs)


def _claim(project: Project, space: EmbeddingSpace, limit: int) -> list[tuple[int, str, bool]]:
    """Lock up to ``limit`` missing tiles nobody else holds (inside the caller's transaction).

    The ``NOT EXISTS`` is judged on the statement's snapshot: a chunk another worker stored
    just after that snapshot was taken is unlocked by then and would be locked and embedded
    again. So the locked rows are checked once more in a new statement, whose snapshot sees every
    commit of a worker that held them; what was stored meanwhile is dropped (and the claim
    retried if nothing is left).
    """
    while True:
        rows = list(
            missing_tiles(project, space)
            .select_for_update(skip_locked=True, of=("self",))
            .order_by("id")
            .values_list("id", "file", "linked")[:limit]
        )
        if not rows:
            return []
        stored = set(TileEmbedding.objects.filter(
            space=space, tile_id__in=[tile_id for tile_id, _, _ in rows]
        ).values_list("tile_id", flat=True))
        fresh = [row for row in rows if row[0] not in stored]
        if fresh:
            return fresh


def inference_device() -> str:
    return settings.SPIDER_INFERENCE_DEVICE or str(default_device())


def load_vectors(space: EmbeddingSpace, tile_ids: Iterable[int]) -> dict[int, np.ndarray]:
    """{tile id: float16 vector} for the cached tiles among ``tile_ids``."""
    wanted = list({t for t in tile_ids if t is not None})
    found: dict[int, np.ndarray] = {}
    for start in range(0, len(wanted), 5000):
        batch = wanted[start : start + 5000]
        for tile_id, vector in TileEmbedding.objects.filter(
            space=space, tile_id__in=batch
        ).values_list("tile_id", "vector"):
            found[tile_id] = np.frombuffer(bytes(vector), dtype=np.float16)
    return found


class GridEmbeddings:
    """(N, 25, D) view over a tile matrix, gathered per batch so memory holds each tile once.

    A whole organ as (N, 25, D) float16 would repeat every shared tile up to 25 times (8 GB
    for skin); the tile matrix plus an (N, 25) index keeps it to the unique tiles.
    """

    def __init__(self, tiles: np.ndarray, index: np.ndarray) -> None:
        self.tiles = tiles  # (T + 1, D); the last row is zeros for blank positions
        self.index = index  # (N, 25) rows of ``tiles``
        self.shape = (index.shape[0], index.shape[1], tiles.shape[1])

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows) -> np.ndarray:
        return self.tiles[self.index[rows]]

    @property
    def blank(self) -> np.ndarray:
        return self.index == len(self.tiles) - 1


def grid_embeddings(space: EmbeddingSpace, grids: list[list[int | None]]) -> GridEmbeddings:
    """Embeddings for patches given by their 25-tile grids; an unembedded tile is an error."""
    tile_ids = sorted({t for grid in grids for t in grid if t is not None})
    vectors = load_vectors(space, tile_ids)
    missing = [t for t in tile_ids if t not in vectors]
    if missing:
        raise RuntimeError(
            f"{len(missing)} tiles have no {space} embedding yet (first: tile {missing[0]}); "
            "embed before predicting"
        )
    row_of = {t: i for i, t in enumerate(tile_ids)}
    matrix = np.zeros((len(tile_ids) + 1, space.embed_dim), dtype=np.float16)
    for t, i in row_of.items():
        matrix[i] = vectors[t]
    blank_row = len(tile_ids)
    index = np.array([[row_of[t] if t is not None else blank_row for t in grid] for grid in grids],
                     dtype=np.int64).reshape(len(grids), GRID_SIZE * GRID_SIZE)
    return GridEmbeddings(matrix, index)
