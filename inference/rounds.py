"""Retraining rounds: when a project retrains by itself, and what a round records.

A round is an inference job of kind ``round`` (embed what is missing, train on the current
labels with the defaults for the size, score out of fold, re-rank, activate unless worse:
:func:`inference.training.train_version`), on the shared job life cycle; one live training
job (train or round) per project. With a policy of every N settled decisions, the review
path's ``review_state_changed`` signal queues a round once the project has N more settled
patches than when the last round was queued (:mod:`inference.round_trigger`).
"""

from __future__ import annotations

from typing import Any

from annotations.models import Patch, PatchStatus, Project, Review, ReviewAction
from annotations.queues import audit_estimate
from inference.models import InferenceJob, RetrainPolicy

SETTLED = (PatchStatus.CONFIRMED, PatchStatus.CORRECTED)
DECISIONS = (ReviewAction.CONFIRM, ReviewAction.CORRECT, ReviewAction.ADJUDICATE)
TRAINING_KINDS = (InferenceJob.Kind.TRAIN, InferenceJob.Kind.ROUND)


def settled_count(project: Project | int) -> int:
    return Patch.objects.filter(project=project, status__in=SETTLED).count()


def policy_of(project: Project) -> RetrainPolicy:
    return RetrainPolicy.objects.filter(project=project).first() or RetrainPolicy(
        project=project)


def snapshot(project: Project) -> dict[str, Any]:
    """The review state a round starts from (kept on the version it trains)."""
    audit = audit_estimate(project)
    return {"settled": settled_count(project),
            "decisions": Review.objects.filter(patch__project=project,
                                               action__in=DECISIONS).count(),
            "audit": {"reviewed": audit.reviewed, "wrong": audit.wrong, "rate": audit.rate,
                      "low": audit.low, "high": audit.high}}


def due(policy: RetrainPolicy, settled: int) -> bool:
    return policy.every_settled > 0 and settled - policy.settled_at_last_round >= \
        policy.every_settled
