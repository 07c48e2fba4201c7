from django.urls import path
from rest_framework.authtoken.views import obtain_auth_token
from rest_framework.routers import SimpleRouter

from annotations.api import views
from inference import api as inference_api

router = SimpleRouter()
router.register("projects", views.ProjectViewSet, basename="project")
scoped = r"projects/(?P<project_slug>[-\w]+)"
router.register(f"{scoped}/classes", views.LabelClassViewSet, basename="class")
router.register(f"{scoped}/slides", views.SlideViewSet, basename="slide")
router.register(f"{scoped}/patches", views.PatchViewSet, basename="patch")
router.register(f"{scoped}/import-jobs", views.ImportJobViewSet, basename="import-job")
router.register(f"{scoped}/models", inference_api.ModelVersionViewSet, basename="model-version")
router.register(f"{scoped}/inference-jobs", inference_api.InferenceJobViewSet,
                basename="inference-job")

urlpatterns = [
    path("auth/token/", obtain_auth_token, name="api-token"),
    path("tiles/<int:tile_id>/image/", views.tile_image_api, name="api-tile-image"),
    *router.urls,
]
