"""Similarity jobs on a real Celery worker over Redis: the index built and candidates
proposed by the worker, then queried through the API."""

from __future__ import annotations

import time

import pytest

from annotations.models import Patch
from inference.similarity.models import Candidate, SimilarityJob
from tests.similarity_fixtures import embed_all, unlabel
from tests.workers import start_worker, stop_worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def wait_for_job(kind: str, timeout: float = 90) -> SimilarityJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = SimilarityJob.objects.filter(kind=kind).first()
        if job is not None and job.status in ("succeeded", "failed"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"the {kind} job did not finish in {timeout}s")


def test_worker_builds_the_index_and_proposes_candidates(client, users, imported_4, settings):
    embed_all(imported_4)
    slide = imported_4.slides.order_by("id").first()
    unlabel(imported_4)
    worker = start_worker(settings, "default")
    try:
        client.force_login(users["admin"])
        url = f"/api/projects/{imported_4.slug}/similarity-jobs/"
        assert client.post(url, {"kind": "index"}, content_type="application/json"
                           ).status_code == 201
        job = wait_for_job("index")
        assert job.status == "succeeded", job.error
        seed = Patch.objects.filter(project=imported_4, current_label__isnull=False).first()
        body = client.get(f"/api/projects/{imported_4.slug}/similar/",
                          {"seeds": seed.pk, "k": 5}).json()
        assert body["results"][0]["patch"] == seed.pk
        assert client.post(url, {"kind": "candidates", "label": seed.current_label_id,
                                 "seeds": [seed.pk], "k": 5},
                           content_type="application/json").status_code == 201
        proposed = wait_for_job("candidates")
        assert proposed.status == "succeeded", proposed.error
        assert Candidate.objects.filter(label=seed.current_label,
                                        patch__slide=slide).count() == 5
    finally:
        stop_worker(worker)
