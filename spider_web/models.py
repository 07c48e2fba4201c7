"""Site-wide records that belong to no project: the login throttle."""

from __future__ import annotations

from django.db import models


class LoginThrottle(models.Model):
    """Failed logins of one username or from one client address in the current window, and
    until when that username or address is locked out.

    Kept in the database rather than a per-process cache so every web worker counts the same
    attempts, and a restart of Redis does not reopen a lock.
    """

    class Kind(models.TextChoices):
        USER = "user", "username"
        ADDRESS = "address", "client address"

    kind = models.CharField(max_length=8, choices=Kind.choices)
    key = models.CharField(max_length=150)  # the username (case-folded) or the address
    failures = models.PositiveIntegerField(default=0)
    window_start = models.DateTimeField()
    locked_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["kind", "key"],
                                               name="login_throttle_one_row_per_key")]

    def __str__(self) -> str:
        return f"{self.kind} {self.key}: {self.failures} failure(s)"
