from django.apps import AppConfig


class SpiderWebConfig(AppConfig):
    """The composing app: its ready() connects the token rules to password changes."""

    name = "spider_web"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from spider_web import token_auth

        token_auth.connect_signals()
