"""The one writer of the queue scores (:class:`inference.models.QueueScore`): each model
version's label quality, disagreement, entropy and ActiveLab score per patch, and whether the
patch awaits review, in narrow rows that the review queues walk by partial index.

Every version keeps its own rows, written as it predicts (:func:`store`), so activating a
version (:func:`activate_version`) writes nothing per patch: it flips the active flag and
adds empty rows only for patches the version has never predicted. Patches imported later
and changes of review state arrive as signals from annotations (:func:`connect`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connection, transaction

from annotations.models import Patch, PatchStatus
from annotations.signals import patches_created, review_state_changed
from inference.models import ModelVersion, QueueScore

SCORE_COLUMNS = ["label_quality", "disagree", "entropy"]


def store(version: ModelVersion, patch_ids: Sequence[int], quality: Sequence[float | None],
          disagree: Sequence[bool], entropy: Sequence[float | None]) -> None:
    """Upsert ``version``'s scores for the given patches (active or not)."""
    waiting = set(Patch.objects.filter(pk__in=patch_ids, status=PatchStatus.UNREVIEWED)
                  .values_list("id", flat=True))
    rows = [QueueScore(model_version_id=version.pk, patch_id=pid, unreviewed=pid in waiting,
                       label_quality=q, disagree=d, entropy=e)
            for pid, q, d, e in zip(patch_ids, quality, disagree, entropy, strict=True)]
    QueueScore.objects.bulk_create(rows, update_conflicts=True,
                                   unique_fields=["model_version", "patch"],
                                   update_fields=[*SCORE_COLUMNS, "unreviewed"],
                                   batch_size=2000)


def store_read_scores(version: ModelVersion, scores: dict[int, float]) -> None:
    """Set ``version``'s ActiveLab score per patch (the ``more_reads`` queue's order). The
    rows exist already (:func:`store` wrote them when the version predicted); patches left
    out keep no score and are not in that queue."""
    rows = [QueueScore(model_version_id=version.pk, patch_id=pid, more_reads=score)
            for pid, score in scores.items()]
    QueueScore.objects.bulk_create(rows, update_conflicts=True,
                                   unique_fields=["model_version", "patch"],
                                   update_fields=["more_reads"], batch_size=2000)


def activate_version(version: ModelVersion) -> None:
    """Make ``version`` the one its project's queues and review page use. One transaction:
    the queues never see a mix of two versions."""
    with transaction.atomic():
        (ModelVersion.objects.select_for_update()
         .filter(project_id=version.project_id, is_active=True).exclude(pk=version.pk)
         .update(is_active=False))
        ModelVersion.objects.filter(pk=version.pk).update(is_active=True)
        add_missing_rows(version)
    version.is_active = True


def add_missing_rows(version: ModelVersion, patch_ids: Sequence[int] | None = None) -> None:
    """Give every patch of the project (or just ``patch_ids``) a row for ``version``, with
    no scores where it has not predicted the patch: unscored patches keep their place at
    the end of the unreviewed queue. One INSERT ... SELECT of the rows that are missing."""
    score, patch = QueueScore._meta.db_table, Patch._meta.db_table
    only = f"AND p.id IN ({', '.join(['%s'] * len(patch_ids))})" if patch_ids else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {score} (model_version_id, patch_id, unreviewed, disagree)
                SELECT %s, p.id, p.status = %s, FALSE FROM {patch} p
                WHERE p.project_id = %s {only}
                  AND NOT EXISTS (SELECT 1 FROM {score} q
                                  WHERE q.model_version_id = %s AND q.patch_id = p.id)""",
            [version.pk, PatchStatus.UNREVIEWED, version.project_id, *(patch_ids or []),
             version.pk])


def _patches_created(sender: Any, *, project_id: int, patch_ids: list[int],
                     **kwargs: Any) -> None:
    version = ModelVersion.objects.filter(project_id=project_id, is_active=True).first()
    if version is not None:
        add_missing_rows(version, patch_ids)


def _review_state_changed(sender: Any, *, patch_id: int, unreviewed: bool,
                          **kwargs: Any) -> None:
    QueueScore.objects.filter(patch_id=patch_id).update(unreviewed=unreviewed)


def connect() -> None:
    """InferenceConfig.ready connects the receivers."""
    patches_created.connect(_patches_created, dispatch_uid="queue-scores-new-patches")
    review_state_changed.connect(_review_state_changed, dispatch_uid="queue-scores-review")
