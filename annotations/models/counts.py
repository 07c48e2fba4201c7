"""Per-project counts kept by the database itself, so pages read them in constant time."""

from django.db import models

from .projects import Project


class ProjectCount(models.Model):
    """One signed contribution to a per-project count: ``(dim, key)`` totals ``sum(n)``.

    Written only by PostgreSQL triggers (migration ``0009_project_counts``) in the same
    transaction as the change, whoever makes it (ORM, bulk_create, COPY, raw SQL): patch rows
    add to ``all``, ``status``, ``split``, ``original``, ``current`` (label ids, ``""`` for
    none), ``slide``, ``settled`` (``"original:current"`` of confirmed and corrected patches)
    ``audit`` (status of the audit sample's patches) and ``unlabelled`` (no label, unreviewed:
    what similarity search proposes classes for); review rows add to ``reviews`` and
    ``decided`` (``"YYYY-MM-DDTHH action"``, UTC hours). Writers only insert, so concurrent
    reviews never wait on a counter row; readers sum, and :mod:`annotations.counts` folds a
    project's rows into one per key from time to time. Triggers are off under
    ``session_replication_role = replica``: run ``manage.py recount`` after such a load.
    """

    # No foreign key constraint: a trigger may add rows while Django deletes the project
    # (its patches go first); the project's own delete trigger removes them at the end.
    project = models.ForeignKey(Project, on_delete=models.DO_NOTHING, db_constraint=False,
                                related_name="+")
    dim = models.CharField(max_length=16)
    key = models.CharField(max_length=80, blank=True)
    n = models.BigIntegerField()

    class Meta:
        indexes = [models.Index(fields=["project", "dim", "key"], name="projectcount_key")]

    def __str__(self) -> str:
        return f"{self.project_id} {self.dim}:{self.key} {self.n:+d}"
