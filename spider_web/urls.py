"""The URLconf composes the apps: each owns its pages and API routes."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from spider_web import account_views, tokens

urlpatterns = [
    path("admin/", admin.site.urls),
    # Ahead of Django's own: a login that is throttled, a reset that says when mail is off.
    path("accounts/login/", account_views.LoginView.as_view(), name="login"),
    path("accounts/password_reset/", account_views.PasswordResetView.as_view(),
         name="password_reset"),
    path("accounts/password_reset/done/", account_views.PasswordResetDoneView.as_view(),
         name="password_reset_done"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/auth/token/", tokens.ObtainToken.as_view(), name="api-token"),
    path("api/auth/token/revoke/", tokens.RevokeToken.as_view(), name="api-token-revoke"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its start-up script as a file (?script): no inline script (CSP).
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"),
         name="swagger-ui"),
    path("api/", include("annotations.api.urls")),
    path("api/", include("inference.api_urls")),
    path("", include("inference.urls")),
    path("", include("annotations.urls")),
]
