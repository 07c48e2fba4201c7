"""Data model of a review project: who may do what, and the patches under review."""

from .audit import ProjectSettingChange
from .counts import ProjectCount
from .exports import ExportJob
from .jobs import ImportJob, TrackedJob
from .leases import Lease
from .patches import Patch, PatchStatus, Split
from .projects import LabelClass, Membership, Project, Role, Slide
from .reviews import Review, ReviewAction, ReviewSource
from .tiles import Tile, TileName

__all__ = [
    "ExportJob",
    "ImportJob",
    "LabelClass",
    "Lease",
    "Membership",
    "Patch",
    "PatchStatus",
    "Project",
    "ProjectCount",
    "ProjectSettingChange",
    "Review",
    "ReviewAction",
    "ReviewSource",
    "Role",
    "Slide",
    "Split",
    "Tile",
    "TileName",
    "TrackedJob",
]
