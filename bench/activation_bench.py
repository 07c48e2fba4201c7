"""Activating a model version at SPIDER-skin size, and the queues straight after.

Why: the review queues sort on the active version's queue scores. Copying them onto the
patch rows took 13-17 s at 160k patches; each version now keeps its own score rows, so a
switch should cost a flag and an anti-join (goal <= 2 s), and the disagreement queue must
then follow the new version.

It loads (or, with --reuse, keeps) the SPIDER-skin-sized project of bench/review_bench.py
(its own database, default `reviewbench`), adds a second version whose predictions differ
from the first on every patch (label quality and entropy shifted, disagreement flipped on
~20% of patches), then activates second, first, second ... and prints the median time of
a switch, of re-activating the active version, and the disagreement queue's size.

Usage: .venv/bin/python bench/activation_bench.py [--reuse] [--patches 160000]
       [--tiles 300000] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import review_bench


def second_version():
    """A copy of the active version with different scores on every patch (SQL, seconds)."""
    from django.db import connection

    from inference.models import ModelVersion, Prediction

    first = ModelVersion.objects.get(project__slug=review_bench.SLUG, is_active=True)
    second = ModelVersion.objects.filter(project=first.project, name="bench-second").first()
    if second is None:
        second = ModelVersion.objects.create(
            project=first.project, name="bench-second", space=first.space,
            head_kind=first.head_kind, head_file=first.head_file,
            head_sha256=first.head_sha256, head_config=first.head_config,
            class_names=first.class_names, source=first.source)
        table = Prediction._meta.db_table
        with connection.cursor() as cur:
            cur.execute(
                f"""INSERT INTO {table} (patch_id, model_version_id, probabilities, predicted_id,
                        confidence, margin, entropy, scored_label_id, label_quality, disagree,
                        out_of_fold, created_at)
                    SELECT patch_id, %s, probabilities, predicted_id, confidence, margin,
                           entropy * 0.9 + 0.01, scored_label_id, label_quality * 0.8 + 0.1,
                           CASE WHEN patch_id %% 5 = 0 THEN NOT disagree ELSE disagree END,
                           out_of_fold, created_at
                    FROM {table} WHERE model_version_id = %s""", [second.pk, first.pk])
            # ... and its queue rows, as storing those predictions writes them
            cur.execute("""INSERT INTO inference_queuescore (model_version_id, patch_id,
                               unreviewed, label_quality, disagree, entropy)
                           SELECT model_version_id, patch_id, TRUE, label_quality, disagree,
                                  entropy FROM inference_prediction
                           WHERE model_version_id = %s""", [second.pk])
            cur.execute(f"ANALYZE {table}")
            cur.execute("ANALYZE inference_queuescore")
    return first, second


def timed(version) -> float:
    from inference.queue_scores import activate_version

    started = time.perf_counter()
    activate_version(version)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patches", type=int, default=160_000)
    parser.add_argument("--tiles", type=int, default=300_000,
                        help="tile rows (nothing here reads them; review_bench uses 2.7M)")
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    import django

    review_bench.db_name()
    fresh = not (args.reuse and review_bench.database_exists())
    if fresh:
        review_bench.recreate_database()
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    if fresh or review_bench.loaded_sizes() is None:
        print(f"loading {args.patches:,} patches ...", flush=True)
        review_bench.load(args.patches, args.tiles, seed=0)
    first, second = second_version()
    from annotations.models import Patch

    n = Patch.objects.filter(project=first.project).count()
    timed(first)  # a warm start: both versions' rows in the cache
    switches, again = [], []
    for _ in range(args.runs):
        switches.append(timed(second))
        switches.append(timed(first))
        again.append(timed(first))
    from annotations.queues import queue_sizes

    disagree = queue_sizes(first.project)["disagreement"]
    print(f"{n:,} patches; switching the active version: median "
          f"{statistics.median(switches):.2f} s (min {min(switches):.2f}, max "
          f"{max(switches):.2f}, {len(switches)} switches); re-activating the active one: "
          f"median {statistics.median(again):.3f} s; {disagree:,} patches in the "
          "disagreement queue after")


if __name__ == "__main__":
    main()
