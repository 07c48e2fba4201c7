"""Fixtures the similarity tests share: a project embedded with the colour/texture encoder
(real tiles, real embeddings, a trained head), and a helper that runs a similarity job."""

from __future__ import annotations

import pytest
from django.utils import timezone

from annotations.models import Patch, Project
from inference.embedding import embed_chunk
from inference.models import InferenceJob
from inference.registry import get_space


def embed_all(project: Project) -> Project:
    """Every tile of ``project`` embedded by the colour/texture encoder (real tissue, real
    embeddings) and the finished job that says so; no head, which similarity never needs."""
    space = get_space("color-texture")
    while embed_chunk(project, space, 4096):
        pass
    InferenceJob.objects.create(project=project, kind=InferenceJob.Kind.PREDICT,
                                space=space, status=InferenceJob.Status.SUCCEEDED,
                                finished_at=timezone.now())
    return project


@pytest.fixture
def embedded(imported_4: Project, eager: None) -> Project:
    """imported_4, embedded (see :func:`embed_all`)."""
    return embed_all(imported_4)


def unlabel(project: Project, slide_index: int = 0) -> list[int]:
    """Make one slide's patches unlabelled, as a whole-slide import leaves them: no original
    or current label, no split, unreviewed."""
    slide = project.slides.order_by("id")[slide_index]
    patches = Patch.objects.filter(project=project, slide=slide)
    patches.update(original_label=None, current_label=None, split="")
    return list(patches.order_by("id").values_list("id", flat=True))
