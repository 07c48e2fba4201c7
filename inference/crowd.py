"""Several reads per patch: CROWDLAB consensus and reviewer quality, and ActiveLab's choice
of the patches one more read would help most (cleanlab's multiannotator module). Worker-only,
run with each trained version over its probabilities (out of fold on the train split).

Each reviewer's label decision in force on a patch is one annotation (unsure, exclude and
undone decisions are not labels). CROWDLAB weighs each reviewer by agreement with the
others and with the model, and gives a consensus label with a quality score per patch; the
app's own consensus (agreement settles, disagreement is adjudicated) stays what sets the
label: CROWDLAB's is shown beside it, where they differ.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from annotations.consensus import SETTLED, decisions_in_force
from annotations.models import Patch, Project, Review, ReviewAction
from inference.models import ModelVersion

LABEL_ACTIONS = (ReviewAction.CONFIRM, ReviewAction.CORRECT)
SHOWN = 50


@dataclass(frozen=True)
class CrowdAnalysis:
    """What :func:`analyse` found: the figures shown (kept on the version's metrics) and
    ActiveLab's score of every patch (the ``more_reads`` queue's order, kept as queue scores)."""

    summary: dict[str, Any]
    read_scores: dict[int, float]


def reader_labels(project: Project, patch_ids: list[int]
                  ) -> tuple[list[int], list[str], dict[tuple[int, int], int]]:
    """(patches with a label decision, reviewer names, {(patch, reviewer index): class id})."""
    wanted = set(patch_ids)
    by_patch: dict[int, list[Review]] = {}
    for review in (Review.objects.filter(patch__project=project).select_related("reviewer")
                   .order_by("patch_id", "id")):
        if review.patch_id in wanted:
            by_patch.setdefault(review.patch_id, []).append(review)
    names: dict[str, int] = {}
    labels: dict[tuple[int, int], int] = {}
    for patch_id, history in by_patch.items():
        decided, _ = decisions_in_force(history)
        for review in decided.values():
            if review.action in LABEL_ACTIONS and review.to_label_id is not None:
                column = names.setdefault(review.reviewer.get_username(), len(names))
                labels[(patch_id, column)] = review.to_label_id
    patches = sorted({p for p, _ in labels})
    return patches, list(names), labels


def analyse(version: ModelVersion, patch_ids: list[int], probs: np.ndarray,
            class_ids: list[int]) -> CrowdAnalysis | None:
    """CROWDLAB and ActiveLab over ``probs`` (rows of ``patch_ids``, columns ``class_ids``);
    None until two reviewers have labelled and some patch has two reads."""
    from cleanlab.multiannotator import (
        get_active_learning_scores,
        get_label_quality_multiannotator,
    )

    patches, reviewers, labels = reader_labels(version.project, patch_ids)
    if len(reviewers) < 2:
        return None
    column_of = {cid: i for i, cid in enumerate(class_ids)}
    matrix = np.full((len(patches), len(reviewers)), np.nan)
    for (patch_id, reviewer), class_id in labels.items():
        matrix[patches.index(patch_id), reviewer] = column_of[class_id]
    if not ((~np.isnan(matrix)).sum(axis=1) >= 2).any():
        return None
    row_of = {p: i for i, p in enumerate(patch_ids)}
    labelled = probs[[row_of[p] for p in patches]]
    unlabelled_ids = [p for p in patch_ids if p not in set(patches)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        crowd = get_label_quality_multiannotator(matrix, labelled, verbose=False)
        scores, scores_unlabelled = get_active_learning_scores(
            matrix, labelled, probs[[row_of[p] for p in unlabelled_ids]]
            if unlabelled_ids else None)
    stats = crowd["annotator_stats"]
    quality = crowd["label_quality"]
    consensus = quality["consensus_label"].to_numpy()
    # Only settled patches: on an open double read the consensus is the first reader's
    # label, which every member (viewers too) would read here while the read is blind.
    current = {pk: label for pk, label, status in Patch.objects.filter(pk__in=patches)
               .values_list("id", "current_label_id", "status") if status in SETTLED}
    differs = [{"patch": p, "crowdlab": version.class_names[int(consensus[i])],
                "quality": round(float(quality["consensus_quality_score"].iloc[i]), 4)}
               for i, p in enumerate(patches)
               if p in current and class_ids[int(consensus[i])] != current[p]]
    candidates = [*zip(patches, scores, strict=True),
                  *zip(unlabelled_ids, scores_unlabelled if unlabelled_ids else [],
                       strict=True)]
    candidates.sort(key=lambda pair: (float(pair[1]), pair[0]))  # lowest: most to gain
    summary = {
        "method": "cleanlab 2.9 CROWDLAB (get_label_quality_multiannotator), ActiveLab",
        "patches": len(patches), "reviewers": {
            reviewers[int(i)]: {
                "quality": round(float(row["annotator_quality"]), 4),
                "agreement": round(float(row["agreement_with_consensus"]), 4),
                "labels": int(row["num_examples_labeled"])}
            for i, row in stats.iterrows()},
        "consensus_differs": differs[:SHOWN], "consensus_differs_total": len(differs),
        "one_more_read": [{"patch": p, "score": round(float(s), 4)}
                          for p, s in candidates[:SHOWN]],
    }
    return CrowdAnalysis(summary, {int(p): float(s) for p, s in candidates})
