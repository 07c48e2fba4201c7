"""Login throttling: failed logins are counted per username and per client address, and a
username or address with too many in a window is locked out for a while.

Every login path authenticates through :class:`ThrottledModelBackend` (the login page, the
API's token endpoint, Django's admin), so none of them lets a password be guessed faster
than ``SPIDER_LOGIN_MAX_FAILURES`` per ``SPIDER_LOGIN_LOCKOUT_SECONDS``; a locked username is
refused even with the right password until the lock ends.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Max, Q
from django.http import HttpRequest
from django.utils import timezone

from spider_web.models import LoginThrottle


def client_address(request: HttpRequest) -> str:
    """The client's address: REMOTE_ADDR, or with SPIDER_TRUSTED_PROXIES = N proxies in
    front, the address the outermost of them put into X-Forwarded-For (the ones to its left
    are whatever the client chose to send, so they are not trusted)."""
    hops = settings.SPIDER_TRUSTED_PROXIES
    if hops:
        forwarded = [part.strip() for part in
                     request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if len(forwarded) >= hops:
            return forwarded[-hops][:150]
    return str(request.META.get("REMOTE_ADDR", ""))[:150]


def _keys(request: HttpRequest, username: str) -> list[tuple[str, str, int]]:
    """(kind, key, failures allowed) for the username and the address of an attempt."""
    username = username.replace("\x00", "")  # a text column holds no NUL
    keys = [(LoginThrottle.Kind.ADDRESS.value, client_address(request),
             settings.SPIDER_LOGIN_MAX_FAILURES_PER_ADDRESS)]
    if username:
        keys.append((LoginThrottle.Kind.USER.value, username.casefold()[:150],
                     settings.SPIDER_LOGIN_MAX_FAILURES))
    return keys


def locked_for(request: HttpRequest, username: str) -> int:
    """Seconds until this username and this address may try again (0: they may now)."""
    now = timezone.now()
    match = Q()
    for kind, key, _ in _keys(request, username):
        match |= Q(kind=kind, key=key)
    until = LoginThrottle.objects.filter(match, locked_until__gt=now).aggregate(
        until=Max("locked_until"))["until"]
    return math.ceil((until - now).total_seconds()) if until else 0


def record_failure(request: HttpRequest, username: str) -> None:
    now = timezone.now()
    window = timedelta(seconds=settings.SPIDER_LOGIN_LOCKOUT_SECONDS)
    with transaction.atomic():
        for kind, key, allowed in _keys(request, username):
            row, _ = LoginThrottle.objects.select_for_update().get_or_create(
                kind=kind, key=key, defaults={"window_start": now})
            if row.window_start < now - window:
                row.failures, row.window_start = 0, now
            row.failures += 1
            if row.failures >= allowed:
                row.locked_until, row.failures, row.window_start = now + window, 0, now
            row.save()
        # Rows whose window and lock are both over say nothing any more.
        LoginThrottle.objects.filter(window_start__lt=now - window).filter(
            Q(locked_until__isnull=True) | Q(locked_until__lt=now)).delete()


def record_success(request: HttpRequest, username: str) -> None:
    """A right password clears the username's count (the address keeps its own)."""
    LoginThrottle.objects.filter(kind=LoginThrottle.Kind.USER,
                                 key=username.replace("\x00", "").casefold()[:150]).delete()


def lockout_message(seconds: int) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return (f"Too many failed logins for this username or from this address: login is "
            f"locked for {minutes} more minute{'s' if minutes != 1 else ''}. Ask an "
            f"administrator if you have forgotten your password.")


class ThrottledModelBackend(ModelBackend):
    """Django's username/password check, refused while the username or address is locked,
    and counting every failure."""

    def authenticate(self, request: HttpRequest | None, username: str | None = None,
                     password: str | None = None, **kwargs: Any) -> Any:
        if request is None:  # not a web login (a shell, a management command)
            return super().authenticate(request, username, password, **kwargs)
        name = str(username or kwargs.get("username") or "")
        if locked_for(request, name):
            raise PermissionDenied(lockout_message(locked_for(request, name)))
        user = super().authenticate(request, username, password, **kwargs)
        if user is None:
            record_failure(request, name)
        else:
            record_success(request, name)
        return user
