"""What annotations announces to the apps built on it (they connect in AppConfig.ready).

annotations never imports those apps; an app that keeps per-patch state of its own (the
model's queue scores) listens here instead. Receivers run in the sender's transaction.
"""

from django.dispatch import Signal

# patch_ids: list[int]; project_id: int. Sent by the importer after it inserted patches.
patches_created = Signal()
# patch_id: int; project_id: int; unreviewed: bool. Sent by the review path when a patch
# leaves or re-enters the unreviewed state (inside the decision's transaction: receivers
# add to every decision's time, so they keep to a query or two).
review_state_changed = Signal()
