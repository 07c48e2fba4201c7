"""The retraining rounds' history: one row per trained model version, oldest first.

Per version: the labels it learnt from, its test metrics, the audit sample's error estimate
when it was trained (with the 95% interval), confident learning's estimate of the errors
left per class, how often reviewers corrected the patches its disagreement queue showed
(the queue's precision) and the decisions per hour made while it was active. Read from what
training stored (``ModelVersion.training``/``metrics``) plus two grouped queries per version.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from django.db.models import Count, Q, Sum

from annotations.models import Project, Review, ReviewAction
from inference.models import ModelVersion, Prediction

DECIDED = (ReviewAction.CONFIRM, ReviewAction.CORRECT, ReviewAction.ADJUDICATE)


@dataclass
class RoundRow:
    version: str
    version_id: int
    created_at: str
    trigger: str  # "every N settled", "button", "train_head" ...
    active: bool
    activated: bool | None
    activation: str
    labels_used: int
    settled: int | None
    accuracy: float | None
    balanced_accuracy: float | None
    weighted_f1: float | None
    audit_rate: float | None
    audit_low: float | None
    audit_high: float | None
    remaining_errors: dict[str, int] = field(default_factory=dict)
    queue_shown: int = 0  # its disagreement items decided while it was the model shown
    queue_corrected: int = 0
    decisions: int = 0
    decisions_per_hour: float | None = None

    @property
    def queue_precision(self) -> float | None:
        return self.queue_corrected / self.queue_shown if self.queue_shown else None

    @property
    def remaining_total(self) -> int | None:
        return sum(self.remaining_errors.values()) if self.remaining_errors else None

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "queue_precision": self.queue_precision,
                "remaining_total": self.remaining_total}


def rounds(project: Project) -> list[RoundRow]:
    versions = list(ModelVersion.objects.filter(project=project,
                                                source=ModelVersion.Source.TRAINED)
                    .order_by("created_at", "id"))
    rows = []
    for i, version in enumerate(versions):
        training, metrics = version.training or {}, version.metrics or {}
        round_info = training.get("round") or {}
        audit = round_info.get("audit") or {}
        activation = training.get("activation") or {}
        learned = metrics.get("confident_learning") or {}
        row = RoundRow(
            version=version.name, version_id=version.pk,
            created_at=version.created_at.isoformat(timespec="seconds"),
            trigger=round_info.get("trigger", "train_head") if round_info else "train_head",
            active=version.is_active, activated=activation.get("activated"),
            activation=activation.get("reason", ""),
            labels_used=int(training.get("train_patches", 0)),
            settled=round_info.get("settled"),
            accuracy=metrics.get("accuracy"), balanced_accuracy=metrics.get("balanced_accuracy"),
            weighted_f1=metrics.get("weighted_f1"),
            audit_rate=audit.get("rate"), audit_low=audit.get("low"), audit_high=audit.get("high"),
            remaining_errors=dict(learned.get("estimated_errors") or {}),
        )
        until = versions[i + 1].created_at if i + 1 < len(versions) else None
        _review_figures(row, version, until)
        rows.append(row)
    return rows


def _review_figures(row: RoundRow, version: ModelVersion, until: Any) -> None:
    """Decisions made while ``version`` was the model shown (reviews record its name)."""
    reviews = Review.objects.filter(patch__project_id=version.project_id,
                                    model_version=version.name, action__in=DECIDED)
    if until is not None:
        reviews = reviews.filter(created_at__lt=until)
    totals = reviews.aggregate(n=Count("id"), ms=Sum("time_spent_ms"),
                               timed=Count("id", filter=Q(time_spent_ms__isnull=False)))
    row.decisions = totals["n"]
    if totals["ms"]:
        row.decisions_per_hour = totals["timed"] / (totals["ms"] / 3_600_000)
    flagged = Prediction.objects.filter(model_version=version, disagree=True).values("patch_id")
    queue = reviews.filter(patch_id__in=flagged).aggregate(
        shown=Count("patch_id", distinct=True),
        corrected=Count("patch_id", distinct=True, filter=Q(action=ReviewAction.CORRECT)))
    row.queue_shown, row.queue_corrected = queue["shown"], queue["corrected"]
