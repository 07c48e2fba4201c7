"""One pass of the stalled-job sweep that every worker runs (for cron, or with no worker)."""

from django.core.management.base import BaseCommand

from annotations import lifecycle


class Command(BaseCommand):
    help = ("Queue stalled jobs again (fewer than SPIDER_JOB_MAX_ATTEMPTS tries) or fail "
            "them; workers do this by themselves every SPIDER_JOB_SWEEP_SECONDS.")

    def handle(self, *args, **options) -> None:
        swept = lifecycle.sweep()
        for label in swept.resumed:
            self.stdout.write(f"{label}: stalled, queued again")
        for label in swept.failed:
            self.stdout.write(f"{label}: stalled too often, failed")
        if not (swept.resumed or swept.failed):
            self.stdout.write("no stalled jobs")
