"""The demo grows its dataset: the index built (each patch, labelled or from the whole
slide, its own best match), prototypes with few-shot figures, candidates queued from the
whole slide's unlabelled patches."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from annotations.models import Patch, Project
from inference.similarity.models import Candidate, ClassPrototypes, SimilarityIndex


@pytest.mark.django_db(transaction=True)
def test_demo_builds_the_index_prototypes_and_a_candidates_queue(eager, client):
    out = io.StringIO()
    call_command("demo", slides=4, stdout=out, stderr=io.StringIO())
    assert "Similarity index built" in out.getvalue()
    project = Project.objects.get(slug="demo")
    patches = Patch.objects.filter(project=project)
    index = SimilarityIndex.objects.get(project=project)
    assert index.size == patches.count() and index.not_embedded == 0

    client.login(username="reviewer", password="demo-password")
    labelled = patches.filter(current_label__isnull=False).order_by("id")[7]
    from_slide = patches.filter(current_label__isnull=True).order_by("id").first()
    assert from_slide is not None, "the demo's whole slide gives unlabelled patches"
    for seed in (labelled, from_slide):
        body = client.get("/api/projects/demo/similar/", {"seeds": seed.pk, "k": 5}).json()
        assert body["results"][0]["patch"] == seed.pk

    figures = ClassPrototypes.objects.get(project=project).fewshot
    assert {"1-shot", "5-shot", "10-shot", "retrieval"} <= set(figures)
    proposed = Candidate.objects.filter(project=project)
    assert proposed.exists()
    assert not proposed.filter(patch__original_label__isnull=False).exists()
    sizes = client.get("/api/projects/demo/queues/").json()["sizes"]
    assert sizes["candidates"] > 0
    page = client.get("/p/demo/").content.decode()
    assert "candidates for" in page.replace("candidate for", "candidates for")
