"""Read-only entry points other apps use to see what the model says (no ORM internals leak).

The review queues, the review page and exports call these; they never query Prediction
directly, so the prediction schema can change in one place. No torch is imported here, so
an export or a web request that only reads predictions does not pay for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db.models import F, FilteredRelation, Q, QuerySet

from annotations.models import Patch, Project

# one_active_version is re-exported: annotations reach inference through this module only.
from inference.active import active_version, one_active_version  # noqa: F401
from inference.models import ModelVersion, Prediction

if TYPE_CHECKING:
    from typing import Any, TypedDict

    from django_stubs_ext import WithAnnotations

    class Scores(TypedDict):
        """What :func:`with_scores` annotates (None where the version has not predicted)."""

        opinion: Any  # a FilteredRelation: a join to filter through (opinion__...), no value
        opinion_disagree: bool | None
        opinion_label_quality: float | None
        opinion_entropy: float | None
        opinion_confidence: float | None


@dataclass(frozen=True)
class PatchOpinion:
    """What one model version says about one patch."""

    model_version: str
    predicted: str
    confidence: float
    top: list[tuple[str, float]]  # (class name, probability), most likely first
    label_quality: float | None
    disagree: bool


def opinions(
    project: Project, patch_ids: Iterable[int], version: ModelVersion | None = None, top: int = 3
) -> dict[int, PatchOpinion]:
    """{patch id: opinion} of ``version`` (default: the active one) for the given patches."""
    version = version or active_version(project)
    if version is None:
        return {}
    names = version.class_names
    found: dict[int, PatchOpinion] = {}
    ids = list(patch_ids)
    for start in range(0, len(ids), 5000):
        rows = Prediction.objects.filter(model_version=version,
                                         patch_id__in=ids[start : start + 5000])
        for p in rows.only("patch_id", "probabilities", "confidence", "label_quality",
                           "disagree"):
            ranked = sorted(range(len(names)), key=lambda i: -p.probabilities[i])[:top]
            found[p.patch_id] = PatchOpinion(
                model_version=version.name,
                predicted=names[ranked[0]],
                confidence=p.confidence,
                top=[(names[i], float(p.probabilities[i])) for i in ranked],
                label_quality=p.label_quality,
                disagree=p.disagree,
            )
    return found


def active_model_name(project: Project) -> str | None:
    version = active_version(project)
    return version.name if version else None


def with_scores(
    patches: QuerySet[Patch], version: ModelVersion
) -> QuerySet[WithAnnotations[Patch, Scores]]:
    """``patches`` annotated with ``version``'s scores (NULL where not predicted):
    ``opinion_disagree``, ``opinion_label_quality``, ``opinion_entropy``,
    ``opinion_confidence``, and ``opinion__predicted`` for filters. One LEFT JOIN.

    The active version's scores are also on the patch rows (what the queues use); this is
    for any version, e.g. comparing a candidate model before activating it."""
    return patches.annotate(
        opinion=FilteredRelation("predictions",
                                 condition=Q(predictions__model_version=version)),
        opinion_disagree=F("opinion__disagree"),
        opinion_label_quality=F("opinion__label_quality"),
        opinion_entropy=F("opinion__entropy"),
        opinion_confidence=F("opinion__confidence"),
    )


def disagreement_order(patches: QuerySet[Patch], version: ModelVersion) -> QuerySet[Patch]:
    """Patches whose label the model disputes, worst label quality first."""
    return (with_scores(patches, version).filter(opinion_disagree=True)
            .order_by(F("opinion_label_quality").asc(nulls_last=True), "id"))


SCORED_QUEUES = ("disagreement", "uncertain", "unreviewed", "more_reads")


def scored_queue(patches: QuerySet[Patch], version: ModelVersion, name: str) -> QuerySet[Patch]:
    """``patches`` in the order of queue ``name`` by ``version``'s queue scores, keeping those
    whose score row says they await review (the caller also filters the patch's status,
    which a concurrent decision re-checks on the locked row).

    One join with the version's narrow score rows (``inference.models.QueueScore``), walked
    in order by the partial index of that queue: disagreement (worst label quality first),
    uncertain (highest entropy first), unreviewed (worst label quality first, unscored last),
    more_reads (ActiveLab's lowest score first: where one more read helps most).
    """
    if name not in SCORED_QUEUES:
        raise ValueError(f"{name!r} is not a scored queue ({', '.join(SCORED_QUEUES)})")
    # One filter() call: separate calls on a multi-valued relation would join it again.
    wanted = {"queue__unreviewed": True}
    if name == "disagreement":
        wanted["queue__disagree"] = True
    elif name == "uncertain":
        wanted["queue__entropy__isnull"] = False
    elif name == "more_reads":
        wanted["queue__more_reads__isnull"] = False
    scored = patches.annotate(
        queue=FilteredRelation("queue_scores",
                               condition=Q(queue_scores__model_version=version)),
    ).filter(**wanted)
    if name == "uncertain":  # as the index
        return scored.order_by(F("queue__entropy").desc(), "queue__patch")
    if name == "more_reads":
        return scored.order_by("queue__more_reads", "queue__patch")
    return scored.order_by(F("queue__label_quality").asc(nulls_last=True), "queue__patch")


def slide_predictions(slide_id: int,
                      version: ModelVersion) -> dict[int, tuple[int, float]]:
    """{patch id: (predicted LabelClass id, confidence)} of ``version`` on one slide's
    patches: what the slide heatmap and its tissue metrics are drawn from."""
    rows = Prediction.objects.filter(model_version=version, patch__slide_id=slide_id)
    return {patch_id: (label_id, confidence) for patch_id, label_id, confidence
            in rows.values_list("patch_id", "predicted_id", "confidence")}


def candidate_queue(patches: QuerySet[Patch], label_id: int | None = None) -> QuerySet[Patch]:
    """Unlabelled ``patches`` proposed as a class (``label_id``, or any) and not rejected for
    it, most similar to their seeds first: the ``candidates`` review queue."""
    from django.db.models import Exists, OuterRef, Subquery

    from inference.similarity.models import Candidate

    rows = Candidate.objects.filter(patch=OuterRef("pk")).exclude(
        state=Candidate.State.REJECTED)
    if label_id:
        rows = rows.filter(label_id=label_id)
    best = rows.order_by("-similarity").values("similarity")[:1]
    return (patches.filter(current_label__isnull=True).filter(Exists(rows))
            .annotate(candidate_similarity=Subquery(best))
            .order_by(F("candidate_similarity").desc(), "id"))


def candidate_proposals(patch_ids: Iterable[int],
                        label_id: int | None = None) -> dict[int, dict[str, Any]]:
    """{patch id: its best open proposal}: class id and name, similarity, first seeds."""
    from inference.similarity.models import Candidate

    rows = (Candidate.objects.filter(patch_id__in=list(patch_ids))
            .exclude(state=Candidate.State.REJECTED).select_related("label")
            .order_by("patch_id", "-similarity"))
    if label_id:
        rows = rows.filter(label_id=label_id)
    out: dict[int, dict[str, Any]] = {}
    for c in rows:
        out.setdefault(c.patch_id, {"label": c.label_id, "name": c.label.name,
                                    "similarity": round(c.similarity, 4),
                                    "seeds": c.seeds[:10]})
    return out


def prototype_opinions(project: Project, patch_ids: list[int]) -> dict[int, dict[str, Any]]:
    """{patch id: nearest class prototype (name, cosine, margin over the runner-up)}: the
    review page's second opinion (empty until prototypes were computed)."""
    from inference.similarity.prototypes import nearest_prototypes

    return nearest_prototypes(project, patch_ids)


def label_issue(project: Project, patch_id: int) -> str | None:
    """The class confident learning says ``patch_id`` likely is, if the active version's
    ``find_label_issues`` flagged its label (None: not flagged, or no model)."""
    from inference.models import LabelIssue

    return (LabelIssue.objects.filter(model_version__project=project,
                                      model_version__is_active=True, patch_id=patch_id)
            .values_list("likely_label__name", flat=True).first())


def crowd_quality(project: Project) -> dict[str, Any] | None:
    """The active version's CROWDLAB figures (reviewer quality, consensus where it differs
    from the label, ActiveLab's next reads), or None before two reviewers double-read."""
    version = active_version(project)
    found = (version.metrics or {}).get("crowdlab") if version else None
    return found if isinstance(found, dict) else None
