"""The one writer of the queue-score columns on ``Patch`` (``model_label_quality``,
``model_disagree``, ``model_entropy``): copies of the active model version's scores, so
each review queue is one partial-index scan instead of a join sorted per request.

Two ways in: :func:`store` when the active version predicts some patches, and
:func:`activate_version`, which copies a whole version's scores in two set-based
statements (seconds at 160k patches, instead of one correlated subquery per row).
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection, transaction

from annotations.models import Patch
from inference.models import ModelVersion, Prediction

SCORE_COLUMNS = ("model_label_quality", "model_disagree", "model_entropy")


def store(version: ModelVersion, patch_ids: Sequence[int], quality: Sequence[float | None],
          disagree: Sequence[bool], entropy: Sequence[float | None]) -> None:
    """Copy fresh scores of ``version`` onto the patches, if it is the active version."""
    if not ModelVersion.objects.filter(pk=version.pk, is_active=True).exists():
        return
    rows = [Patch(pk=pid, model_label_quality=q, model_disagree=d, model_entropy=e)
            for pid, q, d, e in zip(patch_ids, quality, disagree, entropy, strict=True)]
    Patch.objects.bulk_update(rows, list(SCORE_COLUMNS), batch_size=2000)


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
    patch, prediction = Patch._meta.db_table, Prediction._meta.db_table
    # Only rows whose scores change are written: re-activating costs next to nothing.
    differs = "IS DISTINCT FROM" if connection.vendor == "postgresql" else "IS NOT"
    with connection.cursor() as cursor:
        cursor.execute(
            f"""UPDATE {patch} SET model_label_quality = pr.label_quality,
                       model_disagree = pr.disagree, model_entropy = pr.entropy
                FROM {prediction} pr
                WHERE pr.patch_id = {patch}.id AND pr.model_version_id = %s
                  AND {patch}.project_id = %s
                  AND ({patch}.model_label_quality {differs} pr.label_quality
                       OR {patch}.model_disagree {differs} pr.disagree
                       OR {patch}.model_entropy {differs} pr.entropy)""",
            [version.pk, version.project_id])
        cursor.execute(
            f"""UPDATE {patch} SET model_label_quality = NULL, model_disagree = FALSE,
                       model_entropy = NULL
                WHERE project_id = %s
                  AND (model_label_quality IS NOT NULL OR model_disagree
                       OR model_entropy IS NOT NULL)
                  AND NOT EXISTS (SELECT 1 FROM {prediction} pr WHERE pr.patch_id = {patch}.id
                                  AND pr.model_version_id = %s)""",
            [version.project_id, version.pk])
