"""This app's API routes under /api/projects/<slug>/ (spider_web.urls includes them)."""

from rest_framework.routers import SimpleRouter

from inference import api

router = SimpleRouter()
scoped = r"projects/(?P<project_slug>[-\w]+)"
router.register(f"{scoped}/models", api.ModelVersionViewSet, basename="model-version")
router.register(f"{scoped}/inference-jobs", api.InferenceJobViewSet, basename="inference-job")

urlpatterns = router.urls
