"""The one authorisation map: what each action needs, checked here and nowhere else.

Views, the API, actions and templates all ask :func:`can` / :func:`require` with an
:class:`Act`; templates get the set of allowed actions as ``can`` (see
:func:`allowed_actions`), so a page never shows a button whose action would be refused.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, TypeAlias

from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet

from annotations.consensus import SETTLED
from annotations.models import Project, Review, Role

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

    # Who a request is for: ``request.user``, signed in or not.
    AnyUser: TypeAlias = User | AnonymousUser


class Act(StrEnum):
    VIEW = "view"                      # pages, lists, tiles, downloads
    REVIEW = "review"                  # decide, lease, skip, queues
    EXPORT = "export"                  # start an export
    ADJUDICATE = "adjudicate"          # settle disputes, reopen, see open double reads
    MANAGE_MEMBERS = "manage_members"
    MANAGE_CLASSES = "manage_classes"
    IMPORT = "import"                  # start an import from a server folder
    RUN_MODELS = "run_models"          # start prediction or training
    ACTIVATE_MODEL = "activate_model"
    CONTROL_JOBS = "control_jobs"      # cancel or resume any job of the project
    MANAGE_SETTINGS = "manage_settings"  # reads required, audit fraction, lease time


REQUIRED_ROLE: dict[Act, Role] = {
    Act.VIEW: Role.VIEWER,
    Act.REVIEW: Role.REVIEWER,
    Act.EXPORT: Role.REVIEWER,
    Act.ADJUDICATE: Role.ADMIN,
    Act.MANAGE_MEMBERS: Role.ADMIN,
    Act.MANAGE_CLASSES: Role.ADMIN,
    Act.IMPORT: Role.ADMIN,
    Act.RUN_MODELS: Role.ADMIN,
    Act.ACTIVATE_MODEL: Role.ADMIN,
    Act.CONTROL_JOBS: Role.ADMIN,
    Act.MANAGE_SETTINGS: Role.ADMIN,
}


def role_allows(role: str | None, act: Act) -> bool:
    return role is not None and role in Role.at_least(REQUIRED_ROLE[act])


def can(user: AnyUser | None, project: Project, act: Act) -> bool:
    """Whether ``user`` may do ``act`` in ``project`` (never without a user)."""
    return user is not None and role_allows(project.role_of(user), act)


def require(user: AnyUser | None, project: Project, act: Act) -> User:
    """Raise PermissionDenied (403) naming the role ``act`` needs; else return the user, now
    known to be signed in (an anonymous user has no role, so is always refused)."""
    if user is None or not user.is_authenticated or not can(user, project, act):
        raise PermissionDenied(f"This needs the {REQUIRED_ROLE[act].value} role in "
                               f"{project.name}")
    return user


def allowed_actions(user: AnyUser, project: Project) -> frozenset[str]:
    """What ``user`` may do in ``project``, for templates: ``{% if "review" in can %}``."""
    role = project.role_of(user)
    return frozenset(act.value for act in Act if role_allows(role, act))


def visible_reviews(user: AnyUser, project: Project,
                    reviews: QuerySet[Review]) -> QuerySet[Review]:
    """The part of ``reviews`` (of ``project``) that ``user`` may read: admins everything;
    others their own decisions and everyone's on settled patches, so an open double read
    stays blind. The API's review list and the patch page both use this."""
    if can(user, project, Act.ADJUDICATE):
        return reviews
    if not user.is_authenticated:
        return reviews.none()
    return reviews.filter(Q(reviewer=user) | Q(patch__status__in=SETTLED))
