"""The URLconf composes the apps: each owns its pages and API routes."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/", include("annotations.api.urls")),
    path("api/", include("inference.api_urls")),
    path("", include("inference.urls")),
    path("", include("annotations.urls")),
]
