"""Queue a retraining round when a project's policy says one is due (every N settled).

The receiver of annotations' ``review_state_changed`` runs in the web process, inside the
reviewer's transaction, so it stays cheap (one policy lookup per settled patch, a count only
when a policy is on) and takes the policy row's lock only when a round looks due: reviewers
who cross the threshold together queue one round, and a refused round (a training job is
already live) never undoes the review; the next settled patch tries again.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.db.models import QuerySet

from annotations.prepared import columns, first_instances
from annotations.signals import review_state_changed
from inference.actions import JobError, start_round
from inference.models import RetrainPolicy
from inference.rounds import due, settled_count

log = logging.getLogger(__name__)


def _review_state_changed(sender: Any, *, patch_id: int, project_id: int, unreviewed: bool,
                          **kwargs: Any) -> None:
    """After a patch settles: queue a round if the project's policy says one is due."""
    if unreviewed:
        return
    policy = _policy(project_id)
    if policy is None or not due(policy, settled_count(project_id)):
        return
    with transaction.atomic():  # a savepoint: a refused round never undoes the review
        locked = RetrainPolicy.objects.select_for_update().get(pk=policy.pk)
        settled = settled_count(project_id)
        if not due(locked, settled):
            return  # another reviewer's decision queued it first
        try:
            start_round(locked.project, trigger=f"every {locked.every_settled} settled",
                        check=False)
        except JobError as exc:  # a training job is live: the next settled patch retries
            log.info("round for project %s not queued: %s", project_id, exc)
            return
        locked.settled_at_last_round = settled
        locked.save(update_fields=["settled_at_last_round", "updated_at"])


def _policy(project_id: int) -> RetrainPolicy | None:
    """The project's policy if it is on, by a statement compiled once (this runs for every
    settled patch, inside the reviewer's request)."""
    def build(project: int) -> QuerySet[RetrainPolicy, tuple[Any, ...]]:
        return (RetrainPolicy.objects.filter(project_id=project, every_settled__gt=0)
                .values_list(*columns(RetrainPolicy))[:1])

    found = first_instances("retrain policy", build, (RetrainPolicy,), project=project_id)
    return found[0] if found else None


def connect() -> None:
    """InferenceConfig.ready connects the receiver."""
    review_state_changed.connect(_review_state_changed, dispatch_uid="retrain-rounds")
