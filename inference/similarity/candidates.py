"""Candidates: unlabelled patches proposed as class C because they resemble seeds of C, and
the reviewer's yes / no / other class on each.

Proposing is a job (several seeds' searches over the whole index). Answering is an action:
yes and another class go through :func:`annotations.reviewing.submit` like any decision, as
a ``correct`` whose comment and ``shown_probabilities`` name the seeds; no is stored on the
candidate row (state ``rejected``), which keeps the patch from being proposed as C again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from annotations import lifecycle
from annotations.models import LabelClass, Patch, PatchStatus, Project, Review, ReviewAction
from annotations.permissions import Act, require
from annotations.queues import release
from annotations.reviewing import Decision, StaleReview, submit
from inference.similarity import faiss_index, store
from inference.similarity.building import NothingToIndex
from inference.similarity.models import Candidate, SimilarityJob
from inference.similarity.search import current_index

if TYPE_CHECKING:
    from django.contrib.auth.models import User

SETTLED = (PatchStatus.CONFIRMED, PatchStatus.CORRECTED)
MAX_SEEDS = 64  # "all settled patches of C" is sampled down to this many searches
ANSWERED = (Candidate.State.ACCEPTED, Candidate.State.REJECTED, Candidate.State.RELABELLED)


def unlabelled(project: Project) -> Any:
    """Patches with no label at all (a whole-slide import, or an unlabelled folder)."""
    return Patch.objects.filter(project=project, original_label__isnull=True,
                                current_label__isnull=True, status=PatchStatus.UNREVIEWED)


def default_seeds(project: Project, label_id: int) -> list[int]:
    """All settled patches of the class, sampled evenly down to MAX_SEEDS."""
    ids = list(Patch.objects.filter(project=project, current_label_id=label_id,
                                    status__in=SETTLED)
               .order_by("id").values_list("id", flat=True))
    if len(ids) > MAX_SEEDS:
        picks = np.linspace(0, len(ids) - 1, MAX_SEEDS).round().astype(int)
        ids = [ids[i] for i in picks]
    return ids


def propose(job: SimilarityJob) -> dict[str, Any]:
    """Search the index from each seed for the top-K unlabelled patches not already
    answered for the class; upsert the best K overall as candidates of the class."""
    project = job.project
    label = LabelClass.objects.get(project=project, pk=job.options["label"])
    k = int(job.options.get("k", 50))
    row = current_index(project)
    if row is None:
        raise NothingToIndex(f"project {project.slug!r} has no similarity index yet")
    seeds = [int(s) for s in job.options.get("seeds") or default_seeds(project, label.pk)]
    if not seeds:
        raise ValidationError(f"class {label.name!r} has no settled patches to seed from: "
                              "choose seed patches")
    lifecycle.start_stage(job, "searching", total=len(seeds), unit="seeds")
    answered = Candidate.objects.filter(label=label, state__in=ANSWERED).values("patch_id")
    allowed = np.fromiter(unlabelled(project).exclude(pk__in=answered)
                          .values_list("id", flat=True), dtype=np.int64)
    index = store.load(row)
    present = set(faiss_index.ids_of(index).tolist())
    usable = [s for s in seeds if s in present]
    best: dict[int, float] = {}
    found_by: dict[int, list[tuple[float, int]]] = {}
    if len(allowed) and usable:
        queries = faiss_index.vectors_of(index, usable)
        scores, ids = faiss_index.search(index, queries, k, allowed=allowed)
        for seed, row_scores, row_ids in zip(usable, scores, ids, strict=True):
            for s, pid in zip(row_scores.tolist(), row_ids.tolist(), strict=True):
                if pid < 0:
                    continue
                best[pid] = max(best.get(pid, -1.0), s)
                found_by.setdefault(pid, []).append((s, seed))
        lifecycle.advance(job, len(usable), force=True)
    top = sorted(best, key=lambda p: -best[p])[:k]
    existing = {c.patch_id: c for c in Candidate.objects.filter(label=label, patch_id__in=top)}
    new, refreshed = [], []
    for pid in top:
        seeds_of = [seed for _, seed in sorted(found_by[pid], reverse=True)]
        if (c := existing.get(pid)) is None:
            new.append(Candidate(project=project, patch_id=pid, label=label,
                                 similarity=best[pid], seeds=seeds_of, job=job))
        elif c.state == Candidate.State.PROPOSED:
            c.similarity, c.seeds, c.job = best[pid], seeds_of, job
            refreshed.append(c)
    with transaction.atomic():
        Candidate.objects.bulk_create(new, ignore_conflicts=True)
        Candidate.objects.bulk_update(refreshed, ["similarity", "seeds", "job"])
    summary = {"label": label.name, "seeds": len(seeds), "seeds_searched": len(usable),
               "proposed": len(top), "new": len(new), "unlabelled_searched": len(allowed)}
    lifecycle.succeed(job, summary=summary)
    return summary


@dataclass(frozen=True)
class Answer:
    """A reviewer's answer to "is this patch ``proposed``?": yes, no, or another class."""

    proposed: int  # class id the patch was proposed as
    answer: str  # "yes" | "no" | "other"
    patch_version: int
    label: int | None = None  # the class, for "other"
    time_spent_ms: int | None = None


ANSWERS = ("yes", "no", "other")


def answer(project: Project, user: User, patch_id: int, given: Answer) -> Patch:
    """Record ``given``: yes/other as a review row (through the review path), no as a
    rejection; either way the reviewer's lease on the patch ends."""
    require(user, project, Act.REVIEW)
    if given.answer not in ANSWERS:
        raise ValidationError(f"answer must be one of {', '.join(ANSWERS)}")
    candidate = (Candidate.objects.select_related("label")
                 .filter(project=project, patch_id=patch_id, label_id=given.proposed)
                 .exclude(state=Candidate.State.REJECTED).first())
    if candidate is None:
        raise ValidationError(f"patch {patch_id} is not a candidate of class {given.proposed}")
    with transaction.atomic():
        if given.answer == "no":
            # Checked under the patch's lock like any decision: a late "no" (from a page
            # loaded before another reviewer's "yes") used to turn an accepted candidate,
            # with its review row, into a rejected one.
            patch = Patch.objects.select_for_update(of=("self",)).get(pk=patch_id)
            if patch.version != given.patch_version:
                raise StaleReview(patch, None)
            if not Candidate.objects.filter(pk=candidate.pk, state=Candidate.State.PROPOSED
                                            ).update(state=Candidate.State.REJECTED,
                                                     answered_by=user,
                                                     answered_at=timezone.now()):
                raise ValidationError(f"patch {patch_id} was answered as a candidate of "
                                      f"{candidate.label.name} already")
            release(patch, user)
            return patch
        label = given.proposed if given.answer == "yes" else given.label
        if label is None:
            raise ValidationError("'other' needs the class")
        seeds = candidate.seeds[:20]
        note = (f"Proposed as {candidate.label.name} by similarity {candidate.similarity:.3f} "
                f"to seed patches {', '.join(map(str, seeds))}")
        patch = submit(project, user, patch_id, Decision(
            ReviewAction.CORRECT, given.patch_version, label_id=label, comment=note,
            time_spent_ms=given.time_spent_ms,
            shown_probabilities={"candidate": {"label": candidate.label.name,
                                               "similarity": round(candidate.similarity, 4),
                                               "seeds": candidate.seeds}}))
        review = Review.objects.filter(patch_id=patch_id, reviewer=user).order_by("-id").first()
        Candidate.objects.filter(pk=candidate.pk).update(
            state=(Candidate.State.ACCEPTED if label == given.proposed
                   else Candidate.State.RELABELLED),
            answered_by=user, answered_at=timezone.now(), review=review)
    return patch

