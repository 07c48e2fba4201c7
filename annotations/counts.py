"""Reading the per-project counts that PostgreSQL keeps (:class:`ProjectCount`).

Triggers add a signed row per changed key in the writer's own transaction, so these counts
are exact for whoever writes (imports, reviews, bulk loads, raw SQL). A read sums a project's
rows: constant time in the number of patches, as long as the rows stay few, which
:func:`fold` sees to (it replaces them by one row per key). :func:`recount` takes them again
from the patches and reviews, for data written with triggers off.

Other databases (the demo's SQLite) have no triggers: there the same keys are counted from
the patches and reviews on each read (:func:`_counted_now`), fine at a demo's size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db import connection, transaction
from django.db.models import Count, Sum

from annotations.models import Project, ProjectCount
from annotations.queues import patch_in_audit_sample

FOLD_AFTER = 2000  # a project's rows beyond which a read folds them into one per key
_LOCK_CLASS = 726354  # pg advisory lock namespace of the counts (also in migration 0009)


@dataclass(frozen=True)
class Counts:
    """A project's counts by dimension and key (but :data:`LONG_DIMS`)."""

    by_dim: dict[str, dict[str, int]] = field(default_factory=dict)

    def of(self, dim: str) -> dict[str, int]:
        return self.by_dim.get(dim, {})

    def get(self, dim: str, key: str = "") -> int:
        return self.of(dim).get(key, 0)


LONG_DIMS = ("slide", "decided")  # one key per slide, per hour with decisions: read apart


def _kept() -> bool:
    return connection.vendor == "postgresql"


def _counted_now(project: Project) -> dict[tuple[str, str], int]:
    """{(dim, key): n} from the patches and reviews themselves, as migration 0009's
    ``annotations_patch_keys`` and ``annotations_review_keys`` define them."""
    from annotations.models import Patch, Review

    counts: dict[tuple[str, str], int] = {}

    def add(dim: str, key: str | None) -> None:
        if key is not None:
            counts[(dim, key)] = counts.get((dim, key), 0) + 1

    for pid, status, split, original, current, slide in Patch.objects.filter(
            project=project).values_list("id", "status", "split", "original_label_id",
                                         "current_label_id", "slide_id").iterator():
        add("all", "")
        add("status", status)
        add("split", split)
        add("original", "" if original is None else str(original))
        add("current", "" if current is None else str(current))
        add("slide", None if slide is None else str(slide))
        if status in ("confirmed", "corrected"):
            add("settled", f"{original or ''}:{current or ''}")
        if original is None and current is None and status == "unreviewed":
            add("unlabelled", "")
        if patch_in_audit_sample(pid, project):
            add("audit", status)
    for action, created in Review.objects.filter(patch__project=project).values_list(
            "action", "created_at").iterator():
        add("reviews", "")
        if action in ("confirm", "correct", "unsure", "exclude", "adjudicate"):
            add("decided", f"{created.astimezone(UTC):%Y-%m-%dT%H} {action}")
    return counts


def _long(project: Project, dim: str) -> dict[str, int]:
    """One long dimension's {key: n}."""
    if not _kept():
        return {k: n for (d, k), n in _counted_now(project).items() if d == dim}
    rows = (ProjectCount.objects.filter(project=project, dim=dim)
            .values_list("key").annotate(total=Sum("n")).order_by())
    return {key: total for key, total in rows if total}


def project_counts(project: Project) -> Counts:
    """Every dimension's counts but the long ones (one query; folds when rows pile up)."""
    if not _kept():
        by_dim: dict[str, dict[str, int]] = {}
        for (dim, key), n in _counted_now(project).items():
            if dim not in LONG_DIMS:
                by_dim.setdefault(dim, {})[key] = n
        return Counts(by_dim)
    rows = (ProjectCount.objects.filter(project=project).exclude(dim__in=LONG_DIMS)
            .values_list("dim", "key").annotate(total=Sum("n"), rows=Count("id")).order_by())
    by_dim = {}
    stored = keys = 0
    for dim, key, total, n_rows in rows:
        stored, keys = stored + n_rows, keys + 1
        if total:
            by_dim.setdefault(dim, {})[key] = total
    if stored > FOLD_AFTER + keys:
        fold(project.pk)
    return Counts(by_dim)


def slide_patch_counts(project: Project, slide_ids: list[int]) -> dict[int, int]:
    """{slide id: its patches} for the given slides."""
    if not _kept():
        wanted = {str(i) for i in slide_ids}
        return {int(k): n for k, n in _long(project, "slide").items() if k in wanted}
    rows = (ProjectCount.objects.filter(project=project, dim="slide",
                                        key__in=[str(i) for i in slide_ids])
            .values_list("key").annotate(total=Sum("n")).order_by())
    return {int(key): total for key, total in rows}


def top_slides(project: Project, limit: int) -> list[dict]:
    """The ``limit`` slides with most patches (``slide_id``, ``slide__name``, ``n``), ties by
    name; reads one row per slide, not per patch."""
    if not _kept():
        from annotations.models import Slide

        per_slide = {int(k): n for k, n in _long(project, "slide").items()}
        names = dict(Slide.objects.filter(pk__in=per_slide).values_list("id", "name"))
        ranked = sorted(per_slide.items(), key=lambda item: (-item[1], names[item[0]]))
        return [{"slide_id": sid, "slide__name": names[sid], "n": n}
                for sid, n in ranked[:limit]]
    with connection.cursor() as cur:
        cur.execute(
            "SELECT s.id, s.name, c.n FROM (SELECT key::bigint AS slide_id, sum(n) AS n"
            " FROM annotations_projectcount WHERE project_id = %s AND dim = 'slide'"
            " GROUP BY key HAVING sum(n) > 0) c JOIN annotations_slide s ON s.id = c.slide_id"
            " ORDER BY c.n DESC, s.name LIMIT %s", [project.pk, limit])
        return [{"slide_id": sid, "slide__name": name, "n": int(n)}
                for sid, name, n in cur.fetchall()]


def decided_hours(project: Project) -> list[tuple[datetime, str, int]]:
    """(UTC hour, action, decisions) from the ``decided`` dimension: one row per hour in
    which someone decided, whatever the number of decisions."""
    out = []
    for key, n in _long(project, "decided").items():
        hour, action = key.split(" ", 1)
        out.append((datetime.strptime(hour, "%Y-%m-%dT%H").replace(tzinfo=UTC),
                    action, n))
    return out


def fold(project_id: int) -> None:
    """Replace a project's rows by one per key (skipped while another fold or a recount
    runs; rows committed meanwhile stay as they are, and still add up)."""
    if not _kept():
        return
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [_LOCK_CLASS, project_id])
        if not cur.fetchone()[0]:
            return
        cur.execute(
            "WITH gone AS (DELETE FROM annotations_projectcount WHERE project_id = %s"
            " RETURNING dim, key, n) INSERT INTO annotations_projectcount"
            " (project_id, dim, key, n) SELECT %s, dim, key, sum(n) FROM gone"
            " GROUP BY dim, key HAVING sum(n) <> 0", [project_id, project_id])


def recount(project: Project) -> None:
    """Take a project's counts again from its patches and reviews (after a load with
    triggers off, or to check them: the result must not change)."""
    if not _kept():
        return  # nothing kept: every read counts afresh
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SELECT annotations_recount(%s)", [project.pk])
