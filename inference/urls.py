from django.urls import path

from inference import views

urlpatterns = [
    path("p/<slug:slug>/predict/", views.start_predict_view, name="start-predict"),
    path("p/<slug:slug>/train/", views.start_train_view, name="start-train"),
    path("p/<slug:slug>/models/<int:version_id>/activate/", views.activate_view,
         name="activate-model"),
]
