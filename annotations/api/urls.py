from django.urls import path
from rest_framework.routers import SimpleRouter

from annotations.api import reviews, slides, views

router = SimpleRouter()
router.register("projects", views.ProjectViewSet, basename="project")
scoped = r"projects/(?P<project_slug>[-\w]+)"
router.register(f"{scoped}/classes", views.LabelClassViewSet, basename="class")
router.register(f"{scoped}/slides", slides.SlideViewSet, basename="slide")
router.register(f"{scoped}/patches", views.PatchViewSet, basename="patch")
router.register(f"{scoped}/import-jobs", views.ImportJobViewSet, basename="import-job")
router.register(f"{scoped}/export-jobs", views.ExportJobViewSet, basename="export-job")
router.register(f"{scoped}/leases", reviews.LeaseViewSet, basename="lease")
router.register(f"{scoped}/reviews", reviews.ReviewViewSet, basename="review")

urlpatterns = [
    path("tiles/<int:tile_id>/image/", views.tile_image_api, name="api-tile-image"),
    path("projects/<slug:project_slug>/queues/", reviews.queues, name="api-queues"),
    path("projects/<slug:project_slug>/queues/<str:queue>/next/", reviews.next_items,
         name="api-queue-next"),
    path("projects/<slug:project_slug>/patches/<int:patch_id>/reviews/", reviews.review_patch,
         name="api-review-patch"),
    path("projects/<slug:project_slug>/patches/<int:patch_id>/lease/", reviews.lease_one,
         name="api-lease-patch"),
    path("projects/<slug:project_slug>/patches/<int:patch_id>/skip/", reviews.skip_patch,
         name="api-skip-patch"),
    path("projects/<slug:project_slug>/reviews/batch/", reviews.review_batch,
         name="api-review-batch"),
    *router.urls,
]
