"""Never activate a worse model silently: compare a new version with the active one.

Both versions' stored predictions are scored on the same patches against their current
labels: the settled patches a person vouched for without being steered by the model (the
audit sample's and the adjudicated ones), and the labelled test split. On each set a paired
sign test over the patches where the two disagree decides "worse": the new version loses
more patches than it wins and a one-sided test at 5% says that is not chance. Ties and
noise therefore pass (a retrained head differs by a few patches either way); a head trained
for one epoch that drops test accuracy from 0.775 to 0.40 does not.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from django.db.models import Q, QuerySet

from annotations.models import Patch, PatchStatus, Project, Review, ReviewAction, Split
from annotations.queues import audit_key, in_audit_sample
from inference.models import ModelVersion, Prediction

Z_ONE_SIDED_5 = 1.645
SETTLED = (PatchStatus.CONFIRMED, PatchStatus.CORRECTED)
UNTRAINABLE = (PatchStatus.EXCLUDED, PatchStatus.UNSURE, PatchStatus.DISPUTED)


@dataclass(frozen=True)
class Comparison:
    """Accuracy of the new and the active version on one set of patches."""

    patches: int
    new_accuracy: float | None
    active_accuracy: float | None
    new_only_right: int  # patches the new version gets right and the active one wrong
    active_only_right: int

    @property
    def worse(self) -> bool:
        lost, won = self.active_only_right, self.new_only_right
        return lost > won and (lost - won) / math.sqrt(lost + won) > Z_ONE_SIDED_5


@dataclass(frozen=True)
class Verdict:
    activate: bool
    reason: str
    against: str | None  # the active version's name
    settled: Comparison | None
    test: Comparison | None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def settled_patches(project: Project) -> QuerySet[Patch]:
    """Settled audit-sample and adjudicated patches: labels a person vouched for where the
    queue order (the model) did not pick the patch."""
    adjudicated = Review.objects.filter(patch__project=project,
                                        action=ReviewAction.ADJUDICATE).values("patch_id")
    audit = (Patch.objects.filter(project=project).annotate(audit_key=audit_key(project))
             .filter(in_audit_sample(project)).values("id"))
    return Patch.objects.filter(project=project, status__in=SETTLED).filter(
        Q(id__in=audit) | Q(id__in=adjudicated))


def test_patches(project: Project) -> QuerySet[Patch]:
    return (Patch.objects.filter(project=project, split=Split.TEST,
                                 current_label__isnull=False).exclude(status__in=UNTRAINABLE))


def compare(new: ModelVersion, active: ModelVersion, patches: QuerySet[Patch]) -> Comparison:
    labels = dict(patches.values_list("id", "current_label_id"))
    predicted: dict[int, dict[int, int]] = {}
    for version in (new, active):
        predicted[version.pk] = dict(
            Prediction.objects.filter(model_version=version, patch_id__in=list(labels))
            .values_list("patch_id", "predicted_id"))
    both = [p for p in labels if p in predicted[new.pk] and p in predicted[active.pk]]
    right_new = {p for p in both if predicted[new.pk][p] == labels[p]}
    right_active = {p for p in both if predicted[active.pk][p] == labels[p]}
    n = len(both)
    return Comparison(n, len(right_new) / n if n else None,
                      len(right_active) / n if n else None,
                      len(right_new - right_active), len(right_active - right_new))


def judge(new: ModelVersion, active: ModelVersion | None) -> Verdict:
    """Whether ``new`` may replace ``active`` (always, when there is none)."""
    if active is None or active.pk == new.pk:
        return Verdict(True, "no active model yet", None, None, None)
    settled = compare(new, active, settled_patches(new.project))
    test = compare(new, active, test_patches(new.project))
    worse = [f"{name} ({_pct(c.new_accuracy)} vs {_pct(c.active_accuracy)} on {c.patches} "
             f"patches)" for name, c in (("settled audit/adjudicated patches", settled),
                                         ("the test split", test)) if c.worse]
    if worse:
        return Verdict(False, f"kept inactive: worse than {active.name} on "
                       + " and on ".join(worse), active.name, settled, test)
    return Verdict(True, f"not worse than {active.name} (test {_pct(test.new_accuracy)} vs "
                   f"{_pct(test.active_accuracy)}, settled {_pct(settled.new_accuracy)} vs "
                   f"{_pct(settled.active_accuracy)})", active.name, settled, test)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"
