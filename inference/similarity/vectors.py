"""Patches as vectors: each patch is its centre tile's cached embedding (read here without
the backbone, so the web tier never loads torch) in the project's current space."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from django.db.models import QuerySet

from annotations.models import Patch, Project
from inference.active import active_version
from inference.models import EmbeddingSpace, InferenceJob, TileEmbedding

BATCH = 5000


def project_space(project: Project) -> EmbeddingSpace | None:
    """The space similarity uses: the active model's, else the one the project's latest
    finished inference job embedded into (None before anything was embedded)."""
    active = active_version(project)
    if active is not None:
        return active.space
    job = (InferenceJob.objects.filter(project=project, status=InferenceJob.Status.SUCCEEDED,
                                       space__isnull=False)
           .select_related("space").order_by("-finished_at", "-id").first())
    return job.space if job is not None else None


def tile_vectors(space: EmbeddingSpace, tile_ids: Sequence[int]) -> dict[int, np.ndarray]:
    """{tile id: float16 vector} for those of ``tile_ids`` embedded in ``space``."""
    found: dict[int, np.ndarray] = {}
    wanted = sorted(set(tile_ids))
    for start in range(0, len(wanted), BATCH):
        for tile_id, vector in TileEmbedding.objects.filter(
                space=space, tile_id__in=wanted[start:start + BATCH]).values_list(
                "tile_id", "vector"):
            found[tile_id] = np.frombuffer(bytes(vector), dtype=np.float16)
    return found


def patch_vectors(space: EmbeddingSpace, patches: QuerySet[Patch],
                  ) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
    """Batches of (patch ids, float32 vectors, patches left out for want of an embedding),
    in id order, a few thousand patches at a time."""
    last = 0
    while True:
        rows = list(patches.filter(id__gt=last).order_by("id")
                    .values_list("id", "centre_tile_id")[:BATCH])
        if not rows:
            return
        last = rows[-1][0]
        found = tile_vectors(space, [t for _, t in rows])
        kept = [(pid, found[t]) for pid, t in rows if t in found]
        ids = np.array([pid for pid, _ in kept], dtype=np.int64)
        matrix = (np.stack([v for _, v in kept]).astype(np.float32) if kept
                  else np.zeros((0, space.embed_dim), dtype=np.float32))
        yield ids, matrix, len(rows) - len(kept)


def vectors_for(space: EmbeddingSpace, patch_ids: Sequence[int]) -> dict[int, np.ndarray]:
    """{patch id: float32 centre vector} for the given patches that are embedded."""
    rows = list(Patch.objects.filter(pk__in=list(patch_ids))
                .values_list("id", "centre_tile_id"))
    found = tile_vectors(space, [t for _, t in rows])
    return {pid: found[t].astype(np.float32) for pid, t in rows if t in found}
