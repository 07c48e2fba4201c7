from django.urls import path

from annotations import views

urlpatterns = [
    path("", views.project_list, name="project-list"),
    path("p/<slug:slug>/", views.project_detail, name="project-detail"),
    path("p/<slug:slug>/patches/", views.patch_list, name="patch-list"),
    path("p/<slug:slug>/patches/<int:patch_id>/", views.patch_detail, name="patch-detail"),
    path("p/<slug:slug>/members/", views.members, name="members"),
    path("p/<slug:slug>/classes/", views.classes, name="classes"),
    path("p/<slug:slug>/imports/", views.start_import_view, name="start-import"),
    path("tiles/<int:tile_id>/", views.tile_image, name="tile-image"),
]
