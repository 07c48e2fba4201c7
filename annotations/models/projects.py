"""Projects, their members and roles, label classes and slides."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class Role(models.TextChoices):
    """A member's role in one project; each role includes the rights of those below it."""

    ADMIN = "admin", "Admin"
    REVIEWER = "reviewer", "Reviewer"
    VIEWER = "viewer", "Viewer"

    @classmethod
    def at_least(cls, role: str) -> list[str]:
        order = [cls.VIEWER, cls.REVIEWER, cls.ADMIN]
        return [r.value for r in order[order.index(cls(role)):]]


def default_lease_seconds() -> int:
    """A new project's lease time: the SPIDER_LEASE_SECONDS setting (300 s unless set)."""
    return int(settings.SPIDER_LEASE_SECONDS)


def percent(fraction: float) -> str:
    """0.05 -> "5%", 0.125 -> "12.5%" (at most two decimals, no trailing zeros)."""
    return f"{fraction * 100:.2f}".rstrip("0").rstrip(".") + "%"


class ProjectQuerySet(models.QuerySet["Project"]):
    def restrict(self, user, role: str = Role.VIEWER) -> ProjectQuerySet:
        """Projects in which ``user`` holds ``role`` or a higher one (superusers: all)."""
        if not user.is_authenticated:
            return self.none()
        if user.is_superuser:
            return self
        return self.filter(
            memberships__user=user, memberships__role__in=Role.at_least(role)
        ).distinct()


class Project(models.Model):
    """A dataset under review: its patches, classes, slides and members."""

    slug = models.SlugField(max_length=80, unique=True)
    name = models.CharField(max_length=200)
    organ = models.CharField(max_length=40, blank=True,
                             help_text="SPIDER organ (skin, colorectal, thorax, breast) if any")
    description = models.TextField(blank=True)
    licence = models.CharField(max_length=200, blank=True)
    reviews_required = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(3)])
    audit_fraction = models.FloatField(
        default=0.05, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)])
    lease_seconds = models.PositiveIntegerField(
        default=default_lease_seconds,
        validators=[MinValueValidator(30), MaxValueValidator(86400)],
        help_text="how long a reviewer holds a queue item (renewed while their page asks)")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ProjectQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=models.Q(reviews_required__gte=1,
                                                      reviews_required__lte=3),
                                   name="project_reviews_required_1_to_3"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def audit_percent(self) -> str:
        """The audit sample as people write it: 0.05 -> "5%", 0.125 -> "12.5%"."""
        return percent(self.audit_fraction)

    def role_of(self, user) -> str | None:
        """The user's role here, or None for a non-member (superusers act as admins).

        Remembered on this instance (one request's project object), since a request asks
        several times; a membership change shows on the next request's fresh object.
        """
        if not user.is_authenticated:
            return None
        if user.is_superuser:
            return Role.ADMIN
        cache = self.__dict__.setdefault("_roles", {})
        if user.pk not in cache:
            membership = self.memberships.filter(user=user).only("role").first()
            cache[user.pk] = membership.role if membership else None
        return cache[user.pk]


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="membership_once"),
        ]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} of {self.project}"


class LabelClass(models.Model):
    """A class label; ``name`` is kept byte for byte as the data spells it (typos included)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="classes")
    name = models.CharField(max_length=255)
    index = models.PositiveSmallIntegerField(help_text="Stable index used by models and exports")
    colour = models.CharField(max_length=7, default="#888888")
    hotkey = models.CharField(max_length=1, blank=True)

    class Meta:
        ordering = ["project", "index"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="class_name_once"),
            models.UniqueConstraint(fields=["project", "index"], name="class_index_once"),
            models.UniqueConstraint(fields=["project", "hotkey"], name="class_hotkey_once",
                                    condition=~models.Q(hotkey="")),
        ]

    def __str__(self) -> str:
        return self.name


class Slide(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="slides")
    name = models.CharField(max_length=255, help_text="slide_id as given by the data")

    class Meta:
        ordering = ["project", "name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="slide_name_once"),
        ]

    def __str__(self) -> str:
        return self.name
