"""The token endpoints: a token for a username and password (throttled like the login page),
and revoking your own (staff also delete tokens in Django's admin, under *Auth Token*).
Lifetime and password-change rules: :mod:`spider_web.token_auth`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from spider_web.login_guard import locked_for, lockout_message
from spider_web.token_auth import expires_at

TokenAnswer = inline_serializer("TokenAnswer", {
    "token": serializers.CharField(), "expires_at": serializers.DateTimeField()})
Detail = inline_serializer("TokenDetail", {"detail": serializers.CharField()})


class ObtainToken(ObtainAuthToken):
    """A token for a username and password; the same one until it expires, then a new one."""

    @extend_schema(request=inline_serializer("TokenRequest", {
        "username": serializers.CharField(), "password": serializers.CharField()}),
        responses={200: TokenAnswer, 400: OpenApiResponse(description="wrong credentials"),
                   429: OpenApiResponse(Detail, description="too many failed logins")})
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = request.data if isinstance(request.data, Mapping) else {}
        username = str(data.get("username", ""))
        if seconds := locked_for(request._request, username):
            return Response({"detail": lockout_message(seconds)},
                            status=status.HTTP_429_TOO_MANY_REQUESTS,
                            headers={"Retry-After": str(seconds)})
        serializer = self.get_serializer(data=data)
        serializer.is_valid(raise_exception=True)
        user = serializer.validated_data["user"]
        token, _ = Token.objects.get_or_create(user=user)
        if expires_at(token) <= timezone.now():
            token.delete()
            token = Token.objects.create(user=user)
        return Response({"token": token.key, "expires_at": expires_at(token)})


class RevokeToken(APIView):
    """Delete the caller's token: scripts holding it are refused from now on."""

    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request) -> Response:
        Token.objects.filter(user_id=int(request.user.pk or 0)).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)
