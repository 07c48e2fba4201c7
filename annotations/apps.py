from django.apps import AppConfig


class AnnotationsConfig(AppConfig):
    name = "annotations"
    verbose_name = "Annotations"

    def ready(self) -> None:
        from annotations.actions import register_job_types
        from annotations.project_plots import register_plots

        register_job_types()
        register_plots()
