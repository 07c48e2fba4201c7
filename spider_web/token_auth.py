"""How API tokens are checked: valid for SPIDER_TOKEN_LIFETIME_SECONDS after they were
issued, and deleted when their user's password changes. (Apart from the token views, which
import DRF's views: those read the authentication setting that names this module.)"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.db.models.signals import pre_save
from django.utils import timezone
from django.utils.translation import gettext as _
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

from annotations.prepared import columns, first_instances


def expires_at(token: Token) -> datetime:
    return token.created + timedelta(seconds=settings.SPIDER_TOKEN_LIFETIME_SECONDS)


class ExpiringTokenAuthentication(TokenAuthentication):
    """DRF's token check, refusing (and deleting) a token older than its lifetime."""

    def authenticate_credentials(self, key: str) -> tuple[Any, Token]:
        user, token = _token_with_user(key)
        if token is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        if expires_at(token) <= timezone.now():
            token.delete()
            raise exceptions.AuthenticationFailed(
                "Token expired: ask POST /api/auth/token/ for a new one.")
        return user, token


def _token_with_user(key: str) -> tuple[Any, Token | None]:
    """The token and its user in one statement compiled once, as DRF's own check reads them
    (``select_related("user")``): every API call asks, and compiling that queryset was an
    eighth of the review API's Python time under load (bench/review_bench.py --profile)."""
    user_model = get_user_model()

    def build(key: str) -> QuerySet[Token, tuple[Any, ...]]:
        return (Token.objects.filter(key=key)
                .values_list(*columns(Token), *columns(user_model, "user__"))[:1])

    found = first_instances("api token", build, (Token, user_model), key=key)
    if found is None:
        return None, None
    token: Token = found[0]
    token.user = found[1]
    return token.user, token


def _revoke_on_password_change(sender: type, instance: Any, update_fields: Any = None,
                               **kwargs: Any) -> None:
    """A changed password ends every token of the user (whoever held the old password may
    have taken one)."""
    if instance.pk is None or (update_fields is not None and "password" not in update_fields):
        return
    old = get_user_model().objects.filter(pk=instance.pk).values_list("password", flat=True).first()
    if old is not None and old != instance.password:
        Token.objects.filter(user_id=instance.pk).delete()


def connect_signals() -> None:
    pre_save.connect(_revoke_on_password_change, sender=get_user_model(),
                     dispatch_uid="spider_web.token_auth.revoke_on_password_change")
