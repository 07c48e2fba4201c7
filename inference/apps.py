from django.apps import AppConfig


class InferenceConfig(AppConfig):
    name = "inference"
    verbose_name = "Inference"

    def ready(self) -> None:
        from inference.actions import register_job_types
        from inference.panels import register_panels
        from inference.plots import register_plots
        from inference.queue_scores import connect
        from inference.round_trigger import connect as connect_rounds
        from inference.similarity.actions import register_job_type
        from inference.similarity.panels import register_panels as register_similarity

        register_job_types()
        register_panels()
        register_plots()
        connect()
        connect_rounds()
        register_job_type()
        register_similarity()
