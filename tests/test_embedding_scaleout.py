"""Two GPU-queue workers share one embedding job: each embeds tiles, none embeds a tile twice."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from annotations.models import Tile
from inference.actions import start_predict
from inference.models import InferenceJob, TileEmbedding
from tests.workers import register_random_head, start_worker, stop_worker, wait_until

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

# Chunks of 16 tiles in 1-second steps: the 468-tile job spans many claims, so both workers
# are busy at once; two chains once the first step is over.
WORKER_ENV = {"SPIDER_EMBED_CHUNK": "16", "SPIDER_EMBED_BATCH": "16", "SPIDER_EMBED_WORKERS": "0",
              "SPIDER_TASK_STEP_SECONDS": "1", "SPIDER_EMBED_PARALLEL": "2",
              "OMP_NUM_THREADS": "1"}
EMBEDDED = re.compile(r"embedded (\d+) tiles of project (\d+) in space \d+: ids ([\d,-]+)")


@pytest.fixture
def texture_model(imported_4, tmp_path):
    """A colour/texture model with a random head: predicting needs the tiles embedded."""
    return register_random_head(imported_4, tmp_path, "color-texture", "texture")


def embedded_ids(log: Path, project_id: int) -> list[int]:
    """Every tile id a worker's log says it embedded for the project (repeats kept)."""
    ids: list[int] = []
    for count, project, ranges in EMBEDDED.findall(log.read_text(errors="replace")):
        if int(project) != project_id:
            continue
        chunk = []
        for part in ranges.split(","):
            first, _, last = part.partition("-")
            chunk.extend(range(int(first), int(last or first) + 1))
        assert len(chunk) == int(count)
        ids.extend(chunk)
    return ids


def test_two_gpu_workers_share_one_embedding_job(texture_model, settings, tmp_path):
    project = texture_model
    logs = [tmp_path / "gpu-a.log", tmp_path / "gpu-b.log"]
    workers = [start_worker(settings, "gpu,default", log=log, **WORKER_ENV) for log in logs]
    try:
        wait_until(lambda: all(b"ready." in log.read_bytes() for log in logs), 60,
                 "both workers to be ready")
        job = start_predict(project, check=False)

        def finished() -> bool:
            job.refresh_from_db()
            return not job.is_live

        wait_until(finished, 120, "the job to finish")
        assert job.status == InferenceJob.Status.SUCCEEDED, job.error
    finally:
        for worker in workers:
            stop_worker(worker)

    tiles = set(Tile.objects.filter(project=project).values_list("id", flat=True))
    assert TileEmbedding.objects.filter(tile__project=project).count() == len(tiles)
    per_worker = [embedded_ids(log, project.pk) for log in logs]
    assert all(per_worker), f"a worker embedded nothing: {[len(ids) for ids in per_worker]}"
    everything = [i for ids in per_worker for i in ids]
    assert len(everything) == len(set(everything)) == len(tiles)  # no tile embedded twice
    assert set(everything) == tiles
