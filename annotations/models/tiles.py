"""Content-addressed 224x224 tiles, shared by every patch whose context includes them."""

from django.db import models

from .projects import Project


class Tile(models.Model):
    """One image, stored once per project by the sha256 of its bytes.

    ``file`` is a storage name under MEDIA_ROOT (``tiles/ab/<sha256>.png``) or, for imports
    made with ``--link``, an absolute path to the original file (``linked``).
    """

    # db_index=False: tile_content_once (project, sha256) serves every lookup by project;
    # db_constraint=False: annotations.set_keys checks it once per statement
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="tiles",
                                db_index=False, db_constraint=False)
    sha256 = models.CharField(max_length=64)
    file = models.CharField(max_length=1024)
    linked = models.BooleanField(default=False)
    name = models.CharField(max_length=255, help_text="First file name seen for this content")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "sha256"], name="tile_content_once"),
        ]

    def __str__(self) -> str:
        return self.name


class TileName(models.Model):
    """A file name of the source dataset and the tile its content is stored as.

    Several names may share one tile (identical content); a name maps to one tile.
    """

    # db_index=False: tile_name_once (project, name) serves every lookup by project;
    # db_constraint=False on both keys: annotations.set_keys checks them once per statement
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="tile_names",
                                db_index=False, db_constraint=False)
    name = models.CharField(max_length=255)
    tile = models.ForeignKey(Tile, on_delete=models.CASCADE, related_name="names",
                             db_constraint=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="tile_name_once"),
        ]

    def __str__(self) -> str:
        return self.name
