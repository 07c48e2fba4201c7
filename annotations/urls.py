from django.urls import path

from annotations import plot_views, review_views, slide_views, views

urlpatterns = [
    path("", views.project_list, name="project-list"),
    path("p/<slug:slug>/", views.project_detail, name="project-detail"),
    path("p/<slug:slug>/patches/", views.patch_list, name="patch-list"),
    path("p/<slug:slug>/patches/<int:patch_id>/", views.patch_detail, name="patch-detail"),
    path("p/<slug:slug>/members/", views.members, name="members"),
    path("p/<slug:slug>/classes/", views.classes, name="classes"),
    path("p/<slug:slug>/settings/", views.project_settings, name="project-settings"),
    path("p/<slug:slug>/imports/", views.start_import_view, name="start-import"),
    path("p/<slug:slug>/jobs/<str:job_type>/<int:job_id>/<str:operation>/", views.control_job,
         name="control-job"),
    path("tiles/<int:tile_id>/", views.tile_image, name="tile-image"),
    path("p/<slug:slug>/slides/<int:slide_id>/", slide_views.slide_detail, name="slide-detail"),
    path("p/<slug:slug>/slides/<int:slide_id>/slide.dzi", slide_views.slide_dzi,
         name="slide-dzi"),
    path("p/<slug:slug>/slides/<int:slide_id>/slide_files/<int:level>/<int:col>_<int:row>.jpeg",
         slide_views.slide_tile, name="slide-tile"),
    path("p/<slug:slug>/plots/<slug:name>.svg", plot_views.plot_svg, name="plot-svg"),
]

from annotations.exporting import views as export_views  # noqa: E402

urlpatterns += [
    path("p/<slug:slug>/exports/", export_views.start_export_view, name="start-export"),
    path("p/<slug:slug>/exports/<int:job_id>/download/", export_views.download_export,
         name="export-download"),
]

urlpatterns += [
    path("p/<slug:slug>/review/", review_views.review, name="review"),
    path("p/<slug:slug>/review/grid/", review_views.review_grid, name="review-grid"),
    path("p/<slug:slug>/reviewers/", review_views.reviewers, name="reviewers"),
]
