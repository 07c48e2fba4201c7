"""Every HTML page at two project sizes, side by side: is each page flat in the patches?

Why: a page that counts, groups or lists over all of a project's patches gets slower as the
project grows (the issue measured the patch browser at 37 ms with 10k patches and 107 ms
with 50k). Two projects live in one database (the small and the large, same classes, same
share of reviewed patches, same model), and each page is requested on both in turn, so
the machine's load (shared here) weighs on both sizes alike and their ratio is fair.

1. Load (skipped with --reuse when both projects are there): a dedicated database (dropped
   and re-created; its name must contain "bench") gets two projects through
   bench/review_bench.py's COPY loader (24 skin classes, 400-patch slides, an active model
   with one prediction per patch), then --reviewed of each project's patches are decided
   (confirm, or correct to the model's class where it disagrees) by 20 reviewers over
   the last 30 days, written as review rows, one whole slide with a 20x20 grid of patches,
   and ``manage.py recount`` (the loader writes with triggers off).
2. Each page is requested --requests times on each project, alternating, through Django's
   test client (the whole stack: middleware, session login, views, templates) as a member
   with the reviewer role; the first request of each is a warm-up and not counted. The
   reviewers page twice: as it usually is (its figures cached until reviews change) and
   "recomputed" (as after a new review: from the whole review history).
3. It does that --runs times and prints per page and size the medians over the runs of p50
   and p95 in ms, the queries per request, the ratio of the large project's p50 to the
   small one's (goal: flat, near 1; median and each run's) and the load average.

Usage:
  .venv/bin/python bench/page_bench.py [--reuse] [--small 10000] [--large 160000]
      [--requests 30] [--runs 3] [--reviewed 0.05] [--pages project,patches,...]
DATABASE_URL defaults to postgres://postgres@127.0.0.1:5432/pagesbench.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/pagesbench")
os.environ.setdefault("SECRET_KEY", "page-bench-not-secret-" + "x" * 40)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spider_web.settings")
os.environ["DEBUG"] = "0"  # DEBUG=1 would keep every query in memory and change timings
os.environ["ALLOWED_HOSTS"] = "testserver"

from bench import review_bench  # noqa: E402  (the COPY loader; sets nothing up on import)

WHOLE_SLIDE_SIDE = 20  # the whole slide's grid: the same 400 cells in both projects
READER = "bench-reviewer-00"
READERS = 20


def slug_of(patches: int) -> str:
    return f"pages-{patches // 1000}k"


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def load_project(patches: int, reviewed: float, seed: int) -> None:
    """One project through review_bench's loader, then reviews, a whole slide, counts."""
    from annotations.counts import recount
    from annotations.models import Project
    from inference.models import EmbeddingSpace

    review_bench.SLUG = slug_of(patches)
    started = time.perf_counter()
    review_bench.load(patches, 2 * patches, seed)
    project = Project.objects.get(slug=slug_of(patches))
    # The loader's placeholder embedding space is one per (backbone, weights): give this
    # project's its own weights hash, so that the next project's load makes another.
    EmbeddingSpace.objects.filter(models__project=project).update(
        weights_sha256=f"{project.pk:064x}")
    add_members(project)
    add_reviews(project, reviewed, seed)
    add_whole_slide(project)
    recount(project)
    print(f"  {project.slug}: loaded in {time.perf_counter() - started:.1f} s", flush=True)


def add_members(project) -> None:
    """The readers (made once, one password hash) with the reviewer role."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password

    from annotations.models import Membership, Role

    users = get_user_model()
    names = [f"bench-reviewer-{n:02d}" for n in range(READERS)]
    have = set(users.objects.filter(username__in=names).values_list("username", flat=True))
    hashed = make_password("page-bench-password")
    users.objects.bulk_create([users(username=n, password=hashed) for n in names
                               if n not in have])
    Membership.objects.bulk_create(
        [Membership(project=project, user=u, role=Role.REVIEWER)
         for u in users.objects.filter(username__in=names)], ignore_conflicts=True)


def add_reviews(project, share: float, seed: int) -> None:
    """Decide ``share`` of the patches as the review page does: a review row per decision
    and the patch's derived status and label (confirm, or correct to the model's class
    where it disagrees), spread over the last 30 days and the 20 reviewers."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(
            "CREATE TEMP TABLE decided ON COMMIT DROP AS SELECT p.id, p.original_label_id,"
            " CASE WHEN pr.disagree THEN pr.predicted_id ELSE p.original_label_id END AS label,"
            " (SELECT array_agg(id ORDER BY id) FROM auth_user"
            "   WHERE username LIKE 'bench-reviewer-%%') AS readers"
            " FROM annotations_patch p JOIN inference_prediction pr ON pr.patch_id = p.id"
            " WHERE p.project_id = %s AND mod(p.id * 2654435761 + %s, 1000) < %s",
            [project.pk, seed, round(share * 1000)])
        cur.execute(
            "INSERT INTO annotations_review (patch_id, reviewer_id, created_at, action,"
            " from_label_id, to_label_id, reason, comment, patch_version, time_spent_ms,"
            " model_version, source) SELECT id, readers[1 + mod(id, array_length(readers, 1))],"
            " now() - (mod(id * 7, 30 * 24 * 60) || ' minutes')::interval,"
            " CASE WHEN label = original_label_id THEN 'confirm' ELSE 'correct' END,"
            " original_label_id, label, '', '', 1, 1500 + mod(id, 4000), 'skin-context-bench',"
            " 'single' FROM decided")
        cur.execute(
            "UPDATE annotations_patch p SET current_label_id = d.label, decisions = 1,"
            " version = 2, status = CASE WHEN d.label = d.original_label_id THEN 'confirmed'"
            " ELSE 'corrected' END FROM decided d WHERE d.id = p.id")
        cur.execute("UPDATE inference_queuescore q SET unreviewed = FALSE FROM decided d"
                    " WHERE d.id = q.patch_id")


def add_whole_slide(project) -> None:
    """Make the first slide a whole slide: a file name (never opened: the slide page does
    not read it) and its first 400 patches placed on a 20x20 grid."""
    from django.db import connection

    from annotations.models import Slide

    slide = Slide.objects.filter(project=project).order_by("id").first()
    Slide.objects.filter(pk=slide.pk).update(
        source_file=f"/bench/{project.slug}.svs", width=224 * WHOLE_SLIDE_SIDE,
        height=224 * WHOLE_SLIDE_SIDE, mpp=0.5, tile_px=224)
    with connection.cursor() as cur:
        cur.execute(
            "WITH cells AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS i"
            " FROM annotations_patch WHERE slide_id = %s ORDER BY id LIMIT %s)"
            " UPDATE annotations_patch p SET slide_x = 224 * mod(c.i, %s),"
            " slide_y = 224 * (c.i / %s) FROM cells c WHERE c.id = p.id",
            [slide.pk, WHOLE_SLIDE_SIDE ** 2, WHOLE_SLIDE_SIDE, WHOLE_SLIDE_SIDE])


def pages(slug: str) -> dict[str, str]:
    """Each page's URL in project ``slug`` (a patch and a keyset page from its middle)."""
    from annotations.models import Patch, Project, Slide

    project = Project.objects.get(slug=slug)
    ids = Patch.objects.filter(project=project).order_by("id")
    middle = ids.values_list("id", flat=True)[ids.count() // 2]
    label = project.classes.order_by("index").values_list("id", flat=True)[3]
    slide = Slide.objects.filter(project=project).exclude(source_file="").get()
    return {
        "project": f"/p/{slug}/",
        "patches": f"/p/{slug}/patches/",
        "patches, filtered, deep": f"/p/{slug}/patches/?current_label={label}"
                                   f"&status=unreviewed&after={middle}",
        "patch": f"/p/{slug}/patches/{middle}/",
        "patch, filtered": f"/p/{slug}/patches/{middle}/?status=unreviewed",
        "review": f"/p/{slug}/review/",
        "grid": f"/p/{slug}/review/grid/",
        "reviewers": f"/p/{slug}/reviewers/",
        "reviewers, recomputed": f"/p/{slug}/reviewers/",
        "rounds": f"/p/{slug}/rounds/",
        "slide": f"/p/{slug}/slides/{slide.pk}/",
        "plot (svg)": f"/p/{slug}/plots/change_matrix.svg",
    }


def forget_reviewer_figures() -> None:
    """Drop the cached reviewer figures, as a new review would make them stale."""
    from django.core.cache import cache

    from annotations.models import Project

    cache.delete_many([f"reviewer-dashboard:{p.pk}:{p.created_at.timestamp()}"
                       for p in Project.objects.all()])


def timed(client, url: str, fresh: bool = False) -> tuple[float, int]:
    """(ms, queries) of one GET, which must answer 200 (``fresh``: with the reviewer figures
    to take again, as after a new review)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    if fresh:
        forget_reviewer_figures()
    connection.queries_log.clear()  # a full log (9000) would make the count wrong
    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        response = client.get(url)
        elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise SystemExit(f"GET {url} answered {response.status_code}")
    return elapsed, len(queries)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class Figures:
    """One page on one project over one run: p50 and p95 in ms, queries per request."""

    p50: float
    p95: float
    queries: int


def measure(sizes: list[int], requests: int, names: list[str],
            ) -> dict[str, dict[int, Figures]]:
    """Each page ``requests`` times per size, the sizes alternating request by request."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    client = Client()
    client.force_login(get_user_model().objects.get(username=READER))
    urls = {n: pages(slug_of(n)) for n in sizes}
    found: dict[str, dict[int, Figures]] = {}
    for name in names:
        times: dict[int, list[float]] = {n: [] for n in sizes}
        queries: dict[int, int] = {}
        fresh = name.endswith("recomputed")
        for n in sizes:
            timed(client, urls[n][name], fresh)  # warm-up: caches, first plans
        for _ in range(requests):
            for n in sizes:
                ms, queries[n] = timed(client, urls[n][name], fresh)
                times[n].append(ms)
        found[name] = {n: Figures(statistics.median(times[n]), percentile(times[n], 0.95),
                                  queries[n]) for n in sizes}
    return found


def report(sizes: list[int], runs: list[dict[str, dict[int, Figures]]],
           loads: list[str]) -> None:
    """The median over runs of each figure, and each run's ratio of the p50s."""
    small, large = sizes
    label = f"{large // 1000}k/{small // 1000}k"
    print(f"\n| page | {small // 1000}k p50 / p95 ms | {large // 1000}k p50 / p95 ms "
          f"| queries {small // 1000}k / {large // 1000}k | ratio p50 {label} "
          f"(median of {len(runs)}) | ratio per run |")
    print("|---|---|---|---|---|---|")
    for name in runs[0]:
        cells = []
        for n in sizes:
            cells.append(f"{statistics.median(r[name][n].p50 for r in runs):.0f} / "
                         f"{statistics.median(r[name][n].p95 for r in runs):.0f}")
        ratios = [r[name][large].p50 / r[name][small].p50 for r in runs]
        queries = f"{runs[-1][name][small].queries} / {runs[-1][name][large].queries}"
        print(f"| {name} | {' | '.join(cells)} | {queries} | {statistics.median(ratios):.2f} "
              f"| {', '.join(f'{x:.2f}' for x in ratios)} |")
    print(f"load average (1, 5, 15 min) before each run and after the last: {'; '.join(loads)}")


def write_cost(patches: int, repeats: int) -> None:
    """What the count triggers add to writes, triggers on vs off (session_replication_role)
    alternating statement by statement, all rolled back: a decision's patch update (one
    row, status and label change) and a bulk insert of 20,000 patches (an import batch)."""
    from django.db import connection, transaction

    from annotations.models import Patch, Project

    project = Project.objects.get(slug=slug_of(patches))
    ids = list(Patch.objects.filter(project=project, status="unreviewed").order_by("id")
               .values_list("id", "original_label_id")[:repeats])
    other = project.classes.order_by("index").values_list("id", flat=True)[1]
    single: dict[str, list[float]] = {"origin": [], "replica": []}
    bulk: dict[str, list[float]] = {"origin": [], "replica": []}
    with transaction.atomic(), connection.cursor() as cur:
        for i, (pid, label) in enumerate(ids):
            mode = ("origin", "replica")[i % 2]
            cur.execute(f"SET LOCAL session_replication_role = {mode}")
            started = time.perf_counter()
            cur.execute("UPDATE annotations_patch SET status = 'corrected', current_label_id = %s,"
                        " version = version + 1, decisions = 1 WHERE id = %s",
                        [other if other != label else label, pid])
            single[mode].append((time.perf_counter() - started) * 1e6)
        for i in range(4):
            mode = ("origin", "replica")[i % 2]
            cur.execute(f"SET LOCAL session_replication_role = {mode}")
            started = time.perf_counter()
            cur.execute(
                "INSERT INTO annotations_patch (project_id, slide_id, split, image_name,"
                " centre_tile_id, grid, missing_context, original_label_id, current_label_id,"
                " status, version, decisions, leases_held, created_at) SELECT project_id,"
                " slide_id, split, image_name || %s, centre_tile_id, grid, missing_context,"
                " original_label_id, current_label_id, status, 1, 0, 0, now()"
                " FROM annotations_patch WHERE project_id = %s ORDER BY id LIMIT 20000",
                [f".copy{i}", project.pk])
            bulk[mode].append((time.perf_counter() - started) * 1000)
        transaction.set_rollback(True)
    on, off = (statistics.median(single[m]) for m in ("origin", "replica"))
    print(f"\nwrites on {project.slug} (load average {load_average()}): a decision's patch "
          f"update {on:.0f} us with the count triggers, {off:.0f} us without "
          f"(+{on - off:.0f} us, medians of {len(ids) // 2}); 20,000 patches inserted in one "
          f"statement {statistics.median(bulk['origin']):.0f} ms with, "
          f"{statistics.median(bulk['replica']):.0f} ms without (medians of 2)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reuse", action="store_true",
                        help="keep the loaded projects when both are there")
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=160_000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--runs", type=int, default=3, help="runs to take the medians of")
    parser.add_argument("--reviewed", type=float, default=0.05,
                        help="share of each project's patches already decided")
    parser.add_argument("--pages", default="", help="comma-separated page names (default all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write-cost", action="store_true",
                        help="also time what the count triggers add to writes (rolled back)")
    args = parser.parse_args()
    review_bench.db_name()  # refuses a database whose name lacks "bench"
    import django

    sizes = [args.small, args.large]
    fresh = not args.reuse or not review_bench.database_exists()
    if fresh:
        review_bench.recreate_database()
    django.setup()
    from django.core.management import call_command

    from annotations.models import Project

    call_command("migrate", verbosity=0)
    have = {p.slug: p.patches.count() for p in Project.objects.filter(
        slug__in=[slug_of(n) for n in sizes])}
    if fresh or have != {slug_of(n): n for n in sizes}:
        if not fresh:
            review_bench.recreate_database()
            call_command("migrate", verbosity=0)
        print(f"loading {args.small:,} and {args.large:,} patches (load average "
              f"{load_average()}) ...", flush=True)
        for n in sizes:
            load_project(n, args.reviewed, args.seed)
        from django.db import connection

        with connection.cursor() as cur:
            cur.execute("VACUUM ANALYZE")
    chosen = {p.strip() for p in args.pages.split(",") if p.strip()}
    names = [name for name in pages(slug_of(sizes[0])) if not chosen or name in chosen]
    runs, loads = [], []
    for run in range(args.runs):
        loads.append(load_average())
        print(f"run {run + 1} of {args.runs}: {args.requests} requests per page and size "
              f"(load average {loads[-1]})", flush=True)
        runs.append(measure(sizes, args.requests, names))
    loads.append(load_average())
    report(sizes, runs, loads)
    if args.write_cost:
        write_cost(args.large, 400)


if __name__ == "__main__":
    main()
