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


# Letters the review pages give commands (skip, unsure, exclude; in the candidates queue
# "no" and "more like this"), which a class hotkey may therefore not be: the command wins.
COMMAND_KEYS = {"s": "skip", "u": "unsure", "x": "exclude", "n": "no", "m": "more like this"}
# Hotkeys given to imported classes in order: 1-9, then the letters no command takes.
CLASS_HOTKEYS = "123456789" + "".join(c for c in "abcdefghijklmnopqrstuvwxyz"
                                      if c not in COMMAND_KEYS)


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
    """A slide: a ``slide_id`` of an imported dataset, or a whole-slide image cut into tiles.

    For a whole slide the file's geometry is kept (``source_file`` set): its level-0 size,
    microns per pixel, and ``tile_px``, the level-0 pixels one 224 px tile covers at 20x.
    Its patches carry their level-0 ``slide_x``/``slide_y``; the grid cell of a patch is
    ``(slide_x // tile_px, slide_y // tile_px)``. ``quickhash`` is OpenSlide's
    ``quickhash-1``, by which a second import of the same file is recognised.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="slides")
    name = models.CharField(max_length=255, help_text="slide_id as given by the data")
    source_file = models.CharField(max_length=1024, blank=True,
                                   help_text="the whole-slide image this slide was tiled from")
    quickhash = models.CharField(max_length=64, blank=True)
    vendor = models.CharField(max_length=64, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True, help_text="level 0, pixels")
    height = models.PositiveIntegerField(null=True, blank=True, help_text="level 0, pixels")
    mpp = models.FloatField(null=True, blank=True, help_text="level 0, microns per pixel")
    mpp_given = models.BooleanField(default=False, help_text="mpp set by hand, not the file")
    tile_px = models.PositiveIntegerField(null=True, blank=True,
                                          help_text="level-0 pixels per 224 px tile")
    tissue_mm2 = models.FloatField(null=True, blank=True,
                                   help_text="tissue area on the thumbnail mask")

    class Meta:
        ordering = ["project", "name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="slide_name_once"),
        ]
        indexes = [models.Index(fields=["project", "quickhash"], name="slide_quickhash")]

    def __str__(self) -> str:
        return self.name

    @property
    def is_whole_slide(self) -> bool:
        return bool(self.source_file)

    @property
    def grid_shape(self) -> tuple[int, int]:
        """(columns, rows) of the tile grid; (0, 0) for a slide that is not a whole slide."""
        if not self.tile_px or not self.width or not self.height:
            return (0, 0)
        return (self.width // self.tile_px, self.height // self.tile_px)

    @property
    def tile_mm2(self) -> float:
        """Tissue area one grid cell covers."""
        if not self.tile_px or not self.mpp:
            return 0.0
        return (self.tile_px * self.mpp / 1000.0) ** 2
