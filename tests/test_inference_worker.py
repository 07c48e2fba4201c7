"""Inference jobs on real Celery workers over real Redis, including a worker killed mid-job."""

from __future__ import annotations

import os
import signal

import pytest

from annotations.models import Patch, Tile
from inference.actions import start_predict
from inference.models import InferenceJob, Prediction, TileEmbedding
from tests.workers import register_random_head, start_worker, stop_worker, wait_until

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

# Small chunks and short steps so the job spans many transactions and messages; a short
# visibility timeout so the killed worker's unacknowledged message comes back quickly.
WORKER_ENV = {"SPIDER_EMBED_CHUNK": "24", "SPIDER_EMBED_BATCH": "8", "SPIDER_EMBED_WORKERS": "0",
              "SPIDER_PREDICT_CHUNK": "16", "SPIDER_TASK_STEP_SECONDS": "1",
              "CELERY_VISIBILITY_TIMEOUT": "3"}


@pytest.fixture
def random_model(imported_4, tmp_path):
    """A registered hibou-tiny + random context head: slow enough on a CPU to kill mid-job."""
    return register_random_head(imported_4, tmp_path, "hibou-tiny", "random")


def test_killed_worker_job_completes_with_every_patch_predicted_once(random_model, settings):
    project = random_model
    first = start_worker(settings, "gpu,default", **WORKER_ENV)
    second = None
    try:
        job = start_predict(project, check=False)

        def embedding_under_way() -> bool:
            job.refresh_from_db()
            assert job.status != InferenceJob.Status.FAILED, job.error
            return job.stage == InferenceJob.Stage.EMBEDDING and job.tiles_done >= 48

        wait_until(embedding_under_way, 120, "the first worker to embed some tiles")
        os.killpg(first.pid, signal.SIGKILL)  # no goodbye: the message stays unacknowledged
        first.wait()
        job.refresh_from_db()
        assert job.is_live and job.tiles_done < job.tiles_total, "killed too late to test"

        second = start_worker(settings, "gpu,default", **WORKER_ENV)

        def finished() -> bool:
            job.refresh_from_db()
            return not job.is_live

        wait_until(finished, 240, "the second worker to finish the job")
        assert job.status == InferenceJob.Status.SUCCEEDED, job.error
    finally:
        for process in (first, second):
            if process is not None:
                stop_worker(process)

    patches = Patch.objects.filter(project=project).count()
    predictions = Prediction.objects.filter(model_version=job.model_version)
    assert predictions.count() == patches
    assert predictions.values("patch").distinct().count() == patches
    tiles = Tile.objects.filter(project=project).count()
    assert TileEmbedding.objects.filter(tile__project=project).count() == tiles
    assert job.tiles_done == job.tiles_total == tiles
    assert job.patches_done == job.patches_total == patches
