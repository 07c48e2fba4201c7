"""The account pages that differ from Django's: a login that says when it is locked, and a
password reset that says when this server cannot send mail instead of claiming it did."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import render
from django.utils.decorators import method_decorator

from spider_web.login_guard import locked_for, lockout_message


class ThrottledAuthenticationForm(AuthenticationForm):
    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username") or ""
        if self.request is not None and (seconds := locked_for(self.request, username)):
            raise forms.ValidationError(lockout_message(seconds), code="locked")
        return super().clean()


class LoginView(auth_views.LoginView):
    authentication_form = ThrottledAuthenticationForm


def _mail_unavailable(request: HttpRequest) -> HttpResponse:
    return render(request, "registration/password_reset_unavailable.html")


@method_decorator(login_not_required, name="dispatch")
class PasswordResetView(auth_views.PasswordResetView):
    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not settings.SPIDER_MAIL_CONFIGURED:
            return _mail_unavailable(request)
        return super().dispatch(request, *args, **kwargs)


@method_decorator(login_not_required, name="dispatch")
class PasswordResetDoneView(auth_views.PasswordResetDoneView):
    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not settings.SPIDER_MAIL_CONFIGURED:
            return _mail_unavailable(request)
        return super().dispatch(request, *args, **kwargs)
