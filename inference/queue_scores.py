"""The one writer of the queue scores (``annotations.QueueScore``: label quality,
disagreement, entropy): copies of the active model version's scores, so each review queue
is one partial-index scan instead of a join with the predictions sorted per request.

Two ways in: :func:`store` when the active version predicts some patches, and
:func:`activate_version`, which copies a whole version's scores in two set-based
statements over the narrow score rows (see bench/activation_bench.py for the figures).
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection, transaction

from annotations.models import QueueScore
from inference.models import ModelVersion, Prediction

SCORE_COLUMNS = ("label_quality", "disagree", "entropy")


def store(version: ModelVersion, patch_ids: Sequence[int], quality: Sequence[float | None],
          disagree: Sequence[bool], entropy: Sequence[float | None]) -> None:
    """Copy fresh scores of ``version`` onto the patches, if it is the active version."""
    if not ModelVersion.objects.filter(pk=version.pk, is_active=True).exists():
        return
    rows = [QueueScore(patch_id=pid, label_quality=q, disagree=d, entropy=e)
            for pid, q, d, e in zip(patch_ids, quality, disagree, entropy, strict=True)]
    QueueScore.objects.bulk_update(rows, list(SCORE_COLUMNS), batch_size=2000)


def activate_version(version: ModelVersion) -> None:
    """Make ``version`` its project's active one and copy its scores onto the patches
    (patches it has not predicted get none). One transaction: the queues never see a mix."""
    with transaction.atomic():
        (ModelVersion.objects.select_for_update()
         .filter(project_id=version.project_id, is_active=True).exclude(pk=version.pk)
         .update(is_active=False))
        ModelVersion.objects.filter(pk=version.pk).update(is_active=True)
        _copy_scores(version)
    version.is_active = True


def _copy_scores(version: ModelVersion) -> None:
    score, prediction = QueueScore._meta.db_table, Prediction._meta.db_table
    # Only rows whose scores change are written: re-activating costs next to nothing.
    differs = "IS DISTINCT FROM" if connection.vendor == "postgresql" else "IS NOT"
    with connection.cursor() as cursor:
        cursor.execute(
            f"""UPDATE {score} SET label_quality = pr.label_quality, disagree = pr.disagree,
                       entropy = pr.entropy
                FROM {prediction} pr
                WHERE pr.patch_id = {score}.patch_id AND pr.model_version_id = %s
                  AND {score}.project_id = %s
                  AND ({score}.label_quality {differs} pr.label_quality
                       OR {score}.disagree {differs} pr.disagree
                       OR {score}.entropy {differs} pr.entropy)""",
            [version.pk, version.project_id])
        cursor.execute(
            f"""UPDATE {score} SET label_quality = NULL, disagree = FALSE, entropy = NULL
                WHERE project_id = %s
                  AND (label_quality IS NOT NULL OR disagree OR entropy IS NOT NULL)
                  AND NOT EXISTS (SELECT 1 FROM {prediction} pr
                                  WHERE pr.patch_id = {score}.patch_id
                                    AND pr.model_version_id = %s)""",
            [version.project_id, version.pk])
