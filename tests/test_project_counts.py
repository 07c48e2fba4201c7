"""The per-project counts the database keeps (annotations.counts) stay equal to counting
the patches and reviews, whoever writes: an import, decisions and undo through the API,
a settings change of the audit sample, bulk writes, deletions; and ``manage.py recount``
rebuilds them from scratch."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.db.models import Count, Sum
from django.test import Client

from annotations.counts import Counts, fold, project_counts, recount
from annotations.models import Patch, PatchStatus, Project, ProjectCount, Review
from annotations.reviewing import ReviewSettings, update_settings
from annotations.timeline import decisions_by_day as decisions_by_day_grouped
from tests.test_page_queries import built  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db


def grouped(project: Project) -> Counts:
    """The counts the slow way: GROUP BY over the project's patches and reviews."""
    patches = Patch.objects.filter(project=project)

    def by(field: str, rows=patches) -> dict[str, int]:
        return {("" if key is None else str(key)): n for key, n in
                rows.values_list(field).annotate(n=Count("id")).values_list(field, "n")}

    settled = patches.filter(status__in=[PatchStatus.CONFIRMED, PatchStatus.CORRECTED])
    # The audit sample by its definition (annotations.queues.audit_key), in Python.
    cut = int(project.audit_fraction * 2**32)
    audit = patches.filter(pk__in=[pk for pk in patches.values_list("id", flat=True)
                                   if (pk + project.pk * 7919) * 2654435761 % 2**32 < cut])
    dims = {
        "all": {"": patches.count()},
        "status": by("status"), "split": by("split"), "slide": by("slide_id"),
        "original": by("original_label_id"), "current": by("current_label_id"),
        "settled": {f"{o or ''}:{c or ''}": n for o, c, n in settled.values_list(
            "original_label_id", "current_label_id").annotate(n=Count("id"))},
        "audit": by("status", audit),
        "unlabelled": {"": patches.filter(original_label=None, current_label=None,
                                          status=PatchStatus.UNREVIEWED).count()},
        "reviews": {"": Review.objects.filter(patch__project=project).count()},
    }
    return Counts({dim: {k: n for k, n in keys.items() if n} for dim, keys in dims.items()
                   if any(keys.values())})


def kept(project: Project) -> Counts:
    """What the pages read: every dimension but the review hours (checked apart), slides
    summed per slide."""
    counts = {d: v for d, v in project_counts(project).by_dim.items() if d != "decided"}
    slides = {key: n for key, n in ProjectCount.objects.filter(project=project, dim="slide")
              .values_list("key").annotate(n=Sum("n")).values_list("key", "n") if n}
    return Counts({**counts, **({"slide": slides} if slides else {})})


def api(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def decide(client: Client, project: Project, patch: Patch, action: str,
           label: int | None = None, reason: str = "") -> None:
    """One decision through the review API, as the review page sends it."""
    patch.refresh_from_db()
    body = {"action": action, "patch_version": patch.version, "label": label,
            **({"reason": reason} if reason else {})}
    response = client.post(f"/api/projects/{project.slug}/patches/{patch.pk}/reviews/", body,
                           content_type="application/json")
    assert response.status_code == 201, response.content


def test_counts_follow_every_writer(users, imported):
    assert kept(imported).by_dim == grouped(imported).by_dim  # the import (bulk_create in batches)

    reviewer = api(users["reviewer"])
    first, second, third, fourth = Patch.objects.filter(project=imported).order_by("id")[:4]
    other = imported.classes.exclude(pk=second.current_label_id).first()
    decide(reviewer, imported, first, "confirm")
    decide(reviewer, imported, second, "correct", other.pk)
    decide(reviewer, imported, third, "exclude", reason="no tissue")
    decide(reviewer, imported, fourth, "unsure")
    decide(reviewer, imported, fourth, "undo")
    assert kept(imported).by_dim == grouped(imported).by_dim
    assert project_counts(imported).get("settled", f"{second.original_label_id}:{other.pk}") == 1

    # A bigger audit sample: its counts are taken again in the same transaction.
    update_settings(imported, users["admin"], ReviewSettings(1, 0.5, 600))
    assert kept(imported).by_dim == grouped(imported).by_dim
    assert project_counts(imported).get("audit", PatchStatus.UNREVIEWED) > 0

    # Bulk writes and a raw update, as scripts and migrations do.
    Patch.objects.filter(project=imported, split="test").update(split="train")
    Patch.objects.filter(pk=first.pk).update(current_label=None, original_label=None,
                                             status=PatchStatus.UNREVIEWED)
    Patch.objects.filter(project=imported).filter(pk__in=[third.pk]).delete()
    assert kept(imported).by_dim == grouped(imported).by_dim

    # The review hours add up to the decisions per day the timeline groups.
    from annotations.stats import decisions_by_day

    assert decisions_by_day(imported) == decisions_by_day_grouped(imported)

    # Without triggers (the SQLite demo) the same keys are counted on read: the same figures.
    from annotations.counts import _counted_now

    stored = {(dim, key): n for dim, key, n in ProjectCount.objects.filter(project=imported)
              .values_list("dim", "key").annotate(n=Sum("n")).values_list("dim", "key", "n")
              if n}
    assert _counted_now(imported) == stored


def test_fold_and_recount_change_no_count(built, monkeypatch):  # noqa: F811
    imported = built[0]
    for patch in Patch.objects.filter(project=imported).order_by("id")[:20]:
        Patch.objects.filter(pk=patch.pk).update(split="test")  # rows -1/+1 per update
        Patch.objects.filter(pk=patch.pk).update(split="train")
    truth = grouped(imported)
    rows = ProjectCount.objects.filter(project=imported).count()
    monkeypatch.setattr("annotations.counts.FOLD_AFTER", 10)
    assert kept(imported).by_dim == truth.by_dim  # this read folded the rows: one per key now
    keys = ProjectCount.objects.filter(project=imported).values("dim", "key").distinct()
    assert ProjectCount.objects.filter(project=imported).count() == keys.count() < rows
    fold(imported.pk)
    assert kept(imported).by_dim == truth.by_dim

    ProjectCount.objects.filter(project=imported, dim="status").delete()  # damaged
    assert kept(imported).by_dim != truth.by_dim
    out = io.StringIO()
    call_command("recount", project=imported.slug, stdout=out)
    assert kept(imported).by_dim == truth.by_dim and imported.slug in out.getvalue()
    recount(imported)
    assert kept(imported).by_dim == truth.by_dim


def test_a_deleted_project_leaves_no_counts(built):  # noqa: F811
    imported = built[0]
    assert ProjectCount.objects.filter(project=imported).exists()
    pk = imported.pk
    imported.delete()
    assert not ProjectCount.objects.filter(project_id=pk).exists()
