from django.urls import path

from inference import views
from inference.similarity import views as similarity_views

urlpatterns = [
    path("p/<slug:slug>/predict/", views.start_predict_view, name="start-predict"),
    path("p/<slug:slug>/train/", views.start_train_view, name="start-train"),
    path("p/<slug:slug>/models/<int:version_id>/activate/", views.activate_view,
         name="activate-model"),
    *[path(f"p/<slug:slug>/similarity/{kind}/", similarity_views.start_view, {"kind": kind},
           name=f"similarity-{kind}") for kind in ("index", "prototypes", "candidates")],
    path("p/<slug:slug>/rounds/", views.rounds_page, name="model-rounds"),
    path("p/<slug:slug>/rounds/start/", views.start_round_view, name="start-round"),
    path("p/<slug:slug>/rounds/policy/", views.retrain_policy_view, name="retrain-policy"),
]
