"""What a reviewer's screen needs for each leased patch, built in a fixed number of queries."""

from __future__ import annotations

from functools import cache

from django.urls import get_script_prefix, reverse

from annotations.consensus import decisions_in_force, histories
from annotations.models import Lease, Patch, PatchStatus, Project
from inference.queries import candidate_proposals, opinions, prototype_opinions


def tile_url(tile_id: int | None) -> str | None:
    if tile_id is None:
        return None
    before, after = _tile_path_parts()
    return f"{get_script_prefix()}{before}{tile_id}{after}"


@cache
def _tile_path_parts() -> tuple[str, str]:
    """The tile URL's path around its id (after the script prefix, which is per request),
    reversed once: an item has 25 tiles, and reversing each was 2% of the review API's
    Python time. (A new URLconf means a restart anyway.)"""
    path = reverse("tile-image", args=[_PROBE]).removeprefix(get_script_prefix())
    before, _, after = path.rpartition(str(_PROBE))
    return before, after


_PROBE = 987_654_321


def review_items(project: Project, leases: list[Lease],
                 proposed_label: int | None = None) -> list[dict]:
    """One dict per lease, in lease order: the patch, its 5x5 tile URLs, the model's top 3,
    the nearest class prototype (a second opinion), for a candidate the class it was
    proposed as (``proposed_label``, or its best proposal) and the seeds that proposed it,
    and for a disputed patch (leased to an admin) what each reader decided.

    The label shown is the current one, which stays the original until a double read is
    settled, so a second reader never sees the first reader's decision.
    """
    ids = [lease.patch_id for lease in leases]
    patches = {p.pk: p for p in Patch.objects.filter(pk__in=ids).select_related("slide")}
    said = opinions(project, ids)
    nearest = prototype_opinions(project, ids)
    candidates = [lease.patch_id for lease in leases if lease.queue == "candidates"]
    proposals = candidate_proposals(candidates, proposed_label) if candidates else {}
    # Only a patch that is disputed now, whatever the lease's queue says: its reads are
    # settled in the sense that matters (no reader is still to decide blind), and only an
    # admin may lease from that queue (lease_next, lease_patch).
    disputed = [lease.patch_id for lease in leases if lease.queue == "disputed"
                and patches[lease.patch_id].status == PatchStatus.DISPUTED]
    reads = disputed_reads(disputed) if disputed else {}
    items = []
    for lease in leases:
        patch = patches[lease.patch_id]
        opinion = said.get(patch.pk)
        items.append({
            "patch": patch.pk,
            "version": patch.version,
            "image_name": patch.image_name,
            "slide": patch.slide.name,
            "split": patch.split,
            "status": patch.status,
            "current_label": patch.current_label_id,
            "original_label": patch.original_label_id,
            "grid": [tile_url(t) for t in patch.grid],
            "queue": lease.queue,
            "lease_expires": lease.expires_at,
            "model": None if opinion is None else {
                "version": opinion.model_version,
                "top": [{"name": name, "p": round(p, 4)} for name, p in opinion.top],
                "disagree": opinion.disagree,
            },
            "prototype": nearest.get(patch.pk),
            "candidate": proposals.get(patch.pk),
            "reads": reads.get(patch.pk),
        })
    return items


def disputed_reads(patch_ids: list[int]) -> dict[int, list[dict]]:
    """The decisions in force on each disputed patch, oldest first: what the adjudicating
    admin (the only one who may lease a disputed patch) weighs. Never for a read in
    progress, so no reader sees another's."""
    reads = {}
    for patch_id, history in histories(patch_ids).items():
        decided, _ = decisions_in_force(history)
        reads[patch_id] = [
            {"reviewer": review.reviewer.get_username(), "action": review.action,
             "label": review.to_label_id, "reason": review.reason, "comment": review.comment,
             "at": review.created_at}
            for review in sorted(decided.values(), key=lambda r: r.id)]
    return reads
