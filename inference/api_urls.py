"""This app's API routes under /api/projects/<slug>/ (spider_web.urls includes them)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from inference import api, rounds_api
from inference.similarity import api as similarity_api

router = SimpleRouter()
scoped = r"projects/(?P<project_slug>[-\w]+)"
router.register(f"{scoped}/models", api.ModelVersionViewSet, basename="model-version")
router.register(f"{scoped}/inference-jobs", api.InferenceJobViewSet, basename="inference-job")

urlpatterns = [
    path("projects/<slug:project_slug>/similar/", similarity_api.similar, name="api-similar"),
    path("projects/<slug:project_slug>/similarity-jobs/", similarity_api.similarity_jobs,
         name="api-similarity-jobs"),
    path("projects/<slug:project_slug>/candidates/<int:patch_id>/answer/",
         similarity_api.answer_candidate, name="api-answer-candidate"),
    path("projects/<slug:project_slug>/rounds/", rounds_api.RoundsView.as_view(),
         name="api-rounds"),
    path("projects/<slug:project_slug>/retrain-policy/", rounds_api.PolicyView.as_view(),
         name="api-retrain-policy"),
    path("projects/<slug:project_slug>/label-issues/", rounds_api.LabelIssuesView.as_view(),
         name="api-label-issues"),
    path("projects/<slug:project_slug>/crowd/", rounds_api.CrowdView.as_view(), name="api-crowd"),
    *router.urls,
]
