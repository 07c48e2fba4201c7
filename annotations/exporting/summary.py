"""What a snapshot holds, counted while its rows stream past: the numbers the card states."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from annotations.models import PatchStatus

from .rows import ClassList, ExportRow
from .selection import split_name


class SnapshotStats:
    def __init__(self, classes: ClassList) -> None:
        self.classes = classes
        self.rows = 0
        self.by_split_class: Counter[tuple[str, str]] = Counter()
        self.by_status: Counter[str] = Counter()
        self.changes: Counter[tuple[str, str]] = Counter()  # (original, current) when unequal
        self.reviewed = 0
        self.with_decisions = 0
        self.agreement_sum = 0.0
        self.multi_reviewed = 0
        self.unanimous = 0
        self.models: Counter[str] = Counter()
        self.without_model = 0

    def add(self, rows: Iterable[ExportRow]) -> None:
        for row in rows:
            self.rows += 1
            current = self.classes.name(row.current_label)
            original = self.classes.name(row.original_label)
            self.by_split_class[(split_name(row.split), current)] += 1
            self.by_status[row.status] += 1
            if row.status != PatchStatus.UNREVIEWED:
                self.reviewed += 1
            if row.current_label != row.original_label:
                self.changes[(original, current)] += 1
            if row.stats.n_reviews:
                self.with_decisions += 1
                self.agreement_sum += row.stats.agreement or 0.0
                if row.stats.n_reviews > 1:
                    self.multi_reviewed += 1
                    self.unanimous += row.stats.agreement == 1.0
            if row.opinion is None:
                self.without_model += 1
            else:
                self.models[row.opinion.model_version] += 1

    @property
    def changed(self) -> int:
        return sum(self.changes.values())

    @property
    def mean_agreement(self) -> float | None:
        return self.agreement_sum / self.with_decisions if self.with_decisions else None

    def as_dict(self) -> dict:
        """The counts recorded on the export job (JSON-safe, deterministic order)."""
        splits: dict[str, dict[str, int]] = {}
        for (split, label), n in sorted(self.by_split_class.items()):
            splits.setdefault(split, {})[label] = n
        return {
            "rows": self.rows,
            "splits": {split: sum(counts.values()) for split, counts in splits.items()},
            "classes": splits,
            "statuses": dict(sorted(self.by_status.items())),
            "reviewed": self.reviewed,
            "changed": self.changed,
            "changes": [[o, c, n] for (o, c), n in sorted(self.changes.items())],
            "patches_with_decisions": self.with_decisions,
            "mean_agreement": self.mean_agreement,
            "models": dict(sorted(self.models.items())),
            "without_model": self.without_model,
        }
