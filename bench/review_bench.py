"""Review API under load: 50 reviewers on a SPIDER-skin-sized project, over real HTTP.

Why: "next item" takes leases with FOR UPDATE SKIP LOCKED over a queue that joins 160k
patches to their predictions, and "submit" rewrites a patch under a row lock, so the cost
only shows with a full-size table and many reviewers at once. This script measures it the
way pathologists will meet it: gunicorn serving the real app, token-authenticated clients
with keep-alive connections, and the load generator on the same (2-core) machine.

1. Load (skipped with --reuse when the database already holds it): a dedicated database
   (dropped and re-created; its name must contain "bench") gets a project with 24 skin
   classes, --patches patches on 400-patch slides, --tiles tile rows (fake storage names,
   no files: nothing reads images here), an active model version and one prediction per
   patch with realistic scores (~10% model/label disagreement), all written with COPY, then
   VACUUM ANALYZE. --reviewers users (default 50) are members with the reviewer role, each
   with a fresh API token.
2. For each --servers configuration (WORKERSxTHREADS), gunicorn is started on a free port
   and, --repeat times from a fresh review state, for each --queues queue the reviewers run
   next+submit ("confirm") paced at one decision per second each for --paced-seconds, then
   unpaced (no pause) for --unpaced-seconds.
3. Per phase it prints p50/p95/p99 latency of next and submit, decisions/s, CPU per
   decision of gunicorn and of the PostgreSQL backends serving it, the load average, HTTP
   errors and duplicate leases: a patch handed by next to two different reviewers
   (reviews_required=1 and a confirmed patch leaves the queue, so any repeat is a
   duplicate); must be 0. Then the medians over the runs, as a Markdown table.
4. --profile SECONDS: afterwards, py-spy (dev extras) samples gunicorn's workers (the thread
   holding the GIL: Python at work) for SECONDS of unpaced reviewing per queue, and the
   functions holding the most samples are printed (raw stacks in /tmp).
5. --explain: runs one next and one submit in-process (rolled back), lists their SQL by
   time and prints EXPLAIN (ANALYZE, BUFFERS) of the slowest statement of each.
6. --db-kills SECONDS (a fault run): while the reviewers work, every SECONDS all of the
   server's database connections are ended with pg_terminate_backend (a database restart or
   failover, as the server meets it). It then prints decisions answered 201, review rows in
   the database, lost decisions (answered but not stored), 5xx answers and duplicate leases.

Usage:
  .venv/bin/python bench/review_bench.py [--database URL] [--reuse] [--patches 160000]
      [--tiles 2700000] [--reviewers 50] [--servers 3x4,2x8]
      [--queues disagreement,unreviewed] [--paced-seconds 60] [--unpaced-seconds 30]
      [--repeat 3] [--profile 20] [--explain] [--db-kills 2]
The database is --database, else $DATABASE_URL, else
postgres://postgres@127.0.0.1:5432/reviewbench.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/reviewbench"
os.environ.setdefault("DATABASE_URL", DEFAULT_DB)
os.environ.setdefault("SECRET_KEY", "review-bench-not-secret-" + "x" * 40)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spider_web.settings")
os.environ["DEBUG"] = "0"  # DEBUG=1 would keep every query in memory and change timings

SLUG = "skin-bench"
REVIEWERS = 50  # --reviewers
PASSWORD = "review-bench-password"
PATCHES_PER_SLIDE = 400
DISAGREE_RATE = 0.10
COPY_CHUNK = 50_000
PATCH_COLUMNS = ("id, project_id, slide_id, split, image_name, centre_tile_id, grid, "
                 "missing_context, original_label_id, current_label_id, status, version, "
                 "decisions, created_at")


# ---------------------------------------------------------------------------------------
# Database: create, load with COPY, reset


def db_name() -> str:
    name = urlparse(os.environ["DATABASE_URL"]).path.lstrip("/")
    if "bench" not in name or name.startswith("test"):
        raise SystemExit(f"refusing database {name!r}: its name must contain 'bench' "
                         "(this script drops and re-creates it)")
    return name


def admin_dsn() -> str:
    """The same server's maintenance database, to create or drop the bench database."""
    return urlparse(os.environ["DATABASE_URL"])._replace(path="/postgres").geturl()


def database_exists() -> bool:
    import psycopg

    with psycopg.connect(admin_dsn(), autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                            [db_name()]).fetchone() is not None


def recreate_database() -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                     .format(sql.Identifier(db_name())))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db_name())))


def loaded_sizes() -> tuple[int, int, int] | None:
    """(patches, tiles, predictions) of the bench project, or None if it is not there."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT to_regclass('inference_prediction') IS NOT NULL")
        if not cur.fetchone()[0]:
            return None
        cur.execute("SELECT id FROM annotations_project WHERE slug = %s", [SLUG])
        row = cur.fetchone()
        if row is None:
            return None
        counts = []
        for table in ("annotations_patch", "annotations_tile"):
            cur.execute(f"SELECT count(*) FROM {table} WHERE project_id = %s", row)
            counts.append(cur.fetchone()[0])
        cur.execute("SELECT count(*) FROM inference_prediction p JOIN inference_modelversion m"
                    " ON m.id = p.model_version_id WHERE m.project_id = %s AND m.is_active",
                    row)
        return counts[0], counts[1], cur.fetchone()[0]


def model_defaults(model, given: str) -> dict[str, object]:
    """{column: database value} of the model's columns not in ``given``: their defaults.

    The schema changes while the review code evolves; a column this script does not know
    gets what Django would write for a new row, so loading and resetting keep working.
    """
    from django.db import connection

    taken = {c.strip() for c in given.split(",")}
    found: dict[str, object] = {}
    for f in model._meta.concrete_fields:
        if f.column in taken or f.primary_key:
            continue
        if f.has_default():
            value = f.get_db_prep_save(f.get_default(), connection)
            found[f.column] = json.dumps(value.adapted) if hasattr(value, "adapted") else value
        elif f.null:
            found[f.column] = None
        else:
            raise SystemExit(f"{model.__name__}.{f.name} needs a value: teach the bench it")
    return found


def copy_text(value: object) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    return str(value)


def copy_rows(model, columns: str, rows: Iterator[str]) -> None:
    """COPY text-format lines (without their newline) into ``model``'s table on Django's
    connection (same transaction); columns not named get their model defaults."""
    from django.db import connection

    defaults = model_defaults(model, columns)
    extra_columns = "".join(f", {c}" for c in defaults)
    suffix = "".join(f"\t{copy_text(v)}" for v in defaults.values())
    table = model._meta.db_table
    with connection.cursor() as cur, cur.cursor.copy(
            f"COPY {table} ({columns}{extra_columns}) FROM STDIN") as copy:
        chunk = []
        for row in rows:
            chunk.append(f"{row}{suffix}\n")
            if len(chunk) == COPY_CHUNK:
                copy.write("".join(chunk))
                chunk = []
        copy.write("".join(chunk))


def load(patches: int, tiles: int, seed: int) -> None:
    """Generate a SPIDER-skin-sized project and write it with COPY in one transaction."""
    import numpy as np
    from django.db import connection, transaction
    from django.utils import timezone

    from annotations.models import LabelClass, Patch, Project, Slide, Tile
    from annotations.organs import SPIDER_CLASSES
    from inference.models import EmbeddingSpace, ModelVersion, Prediction

    if tiles < patches:
        raise SystemExit("--tiles must be at least --patches (every patch has a centre tile)")
    rng = np.random.default_rng(seed)
    names = SPIDER_CLASSES["skin"]
    k = len(names)
    now = timezone.now().isoformat()
    with transaction.atomic():
        with connection.cursor() as cur:
            cur.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            if cur.fetchone()[0]:  # generated rows are consistent: skip 3M deferred FK checks
                cur.execute("SET LOCAL session_replication_role = replica")
        project = Project.objects.create(slug=SLUG, name="Skin (review bench)", organ="skin")
        classes = LabelClass.objects.bulk_create(
            [LabelClass(project=project, name=n, index=i) for i, n in enumerate(names)])
        class_ids = np.array([c.pk for c in classes])
        n_slides = max(1, -(-patches // PATCHES_PER_SLIDE))
        slides = Slide.objects.bulk_create(
            [Slide(project=project, name=f"skin-slide-{i:04d}") for i in range(n_slides)])
        slide_ids = [s.pk for s in slides]

        with connection.cursor() as cur:
            cur.execute("SELECT coalesce(max(id), 0) FROM annotations_tile")
            tile_base = cur.fetchone()[0] + 1
            cur.execute("SELECT coalesce(max(id), 0) FROM annotations_patch")
            patch_base = cur.fetchone()[0] + 1

        def tile_rows() -> Iterator[str]:
            pid = project.pk
            for i in range(tile_base, tile_base + tiles):
                yield f"{i}\t{pid}\t{i:064x}\ttiles/{i & 255:02x}/{i:064x}.png\tf\ttile_{i}.png"

        started = time.perf_counter()
        copy_rows(Tile, "id, project_id, sha256, file, linked, name", tile_rows())
        print(f"  tiles       {tiles:>9,} rows {time.perf_counter() - started:6.1f} s",
              flush=True)

        # Labels: SPIDER skin is imbalanced; a Zipf-like class frequency stands in for it.
        weights = 1.0 / np.arange(1, k + 1) ** 0.9
        weights = rng.permutation(weights / weights.sum())
        labels = rng.choice(k, size=patches, p=weights)
        # Context: patch i's 24 neighbours are a window over the non-centre tiles, so
        # neighbouring patches share tiles as in SPIDER; ~3% sit at a border (5 missing).
        context = tiles - patches
        stride = max(1, context // max(1, patches))
        border = rng.random(patches) < 0.03

        def patch_rows() -> Iterator[str]:
            pid = project.pk
            for i in range(patches):
                centre = tile_base + i
                grid = [str(tile_base + patches + (i * stride + j) % context) if context
                        else "null" for j in range(24)]
                if border[i]:
                    grid[:5] = ["null"] * 5
                grid.insert(12, str(centre))
                slide = i // PATCHES_PER_SLIDE
                label = class_ids[labels[i]]
                yield (f"{patch_base + i}\t{pid}\t{slide_ids[slide]}\t"
                       f"{'test' if slide % 5 == 0 else 'train'}\t"
                       f"skin-slide-{slide:04d}/{i:07d}.png\t{centre}\t[{','.join(grid)}]\t"
                       f"{grid.count('null')}\t{label}\t{label}\tunreviewed\t1\t0\t{now}")

        started = time.perf_counter()
        copy_rows(Patch, PATCH_COLUMNS, patch_rows())
        print(f"  patches     {patches:>9,} rows {time.perf_counter() - started:6.1f} s",
              flush=True)

        space = EmbeddingSpace.objects.create(
            backbone="hibou-l", weights_sha256="0" * 64, embed_dim=1024,
            weights_path="(review bench placeholder: no inference runs)")
        version = ModelVersion.objects.create(
            project=project, name="skin-context-bench", space=space,
            head_file="bench/placeholder.safetensors", head_sha256="0" * 64,
            class_names=list(names), source=ModelVersion.Source.REGISTERED,
            source_detail="review bench placeholder", is_active=True)

        # Scores: a confident head that disputes ~10% of labels, so the disagreement queue
        # holds ~16k patches ordered by self-confidence of the given label.
        rows = np.arange(patches)
        disputes = rng.random(patches) < DISAGREE_RATE
        target = np.where(disputes, (labels + rng.integers(1, k, patches)) % k, labels)
        logits = rng.normal(0.0, 1.0, (patches, k))
        logits[rows, target] = logits.max(axis=1) + 0.1 + rng.gamma(2.0, 1.0, patches)
        below = logits[rows, target] - 0.05 - rng.gamma(1.5, 0.8, patches)
        logits[rows, labels] = np.where(disputes, below, logits[rows, labels])
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        ranked = np.sort(probs, axis=1)
        predicted = probs.argmax(axis=1)
        confidence = ranked[:, -1]
        margin = ranked[:, -1] - ranked[:, -2]
        entropy = -(probs * np.log(np.clip(probs, 1e-12, None))).sum(axis=1)
        quality = probs[rows, labels]
        disagree = predicted != labels
        text = io.StringIO()
        np.savetxt(text, probs, fmt="%.5f", delimiter=",")
        prob_json = text.getvalue().splitlines()

        def prediction_rows() -> Iterator[str]:
            vid = version.pk
            for i in range(patches):
                yield (f"{patch_base + i}\t{vid}\t[{prob_json[i]}]\t{class_ids[predicted[i]]}\t"
                       f"{confidence[i]:.6f}\t{margin[i]:.6f}\t{entropy[i]:.6f}\t"
                       f"{class_ids[labels[i]]}\t{quality[i]:.6f}\t{'t' if disagree[i] else 'f'}"
                       f"\tf\t{now}")

        started = time.perf_counter()
        copy_rows(Prediction, "patch_id, model_version_id, probabilities, "
                  "predicted_id, confidence, margin, entropy, scored_label_id, label_quality, "
                  "disagree, out_of_fold, created_at", prediction_rows())
        with connection.cursor() as cur:  # the version's queue rows, as storing predictions
            cur.execute("INSERT INTO inference_queuescore (model_version_id, patch_id, "
                        "unreviewed, label_quality, disagree, entropy) SELECT "
                        "model_version_id, patch_id, TRUE, label_quality, disagree, entropy "
                        "FROM inference_prediction WHERE model_version_id = %s", [version.pk])
        print(f"  predictions {patches:>9,} rows {time.perf_counter() - started:6.1f} s "
              f"({disagree.mean():.1%} disagree)", flush=True)

        with connection.cursor() as cur:
            for table in ("annotations_tile", "annotations_patch"):
                cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                            f"(SELECT max(id) FROM {table}))")
    started = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE")
    print(f"  vacuum analyze {time.perf_counter() - started:6.1f} s", flush=True)


def reviewer_name(n: int) -> str:
    return f"bench-reviewer-{n:02d}"


def ensure_reviewers(count: int) -> None:
    """Reviewers 0..count-1 exist and have the reviewer role in the bench project (a database
    kept with --reuse may have been loaded for fewer)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password

    from annotations.models import Membership, Project, Role

    project = Project.objects.get(slug=SLUG)
    users = get_user_model()
    names = [reviewer_name(n) for n in range(count)]
    have = set(users.objects.filter(username__in=names).values_list("username", flat=True))
    if missing := [name for name in names if name not in have]:
        hashed = make_password(PASSWORD)  # hashed once: 50 hashes would cost ~25 s of CPU
        users.objects.bulk_create([users(username=name, password=hashed) for name in missing])
    for user in users.objects.filter(username__in=names):
        Membership.objects.get_or_create(project=project, user=user,
                                         defaults={"role": Role.REVIEWER})


def sync_queue_scores() -> None:
    """Activate the loaded version as the app does (COPY bypassed it): it adds the queue rows
    of patches the version did not predict (none here)."""
    from inference.models import ModelVersion
    from inference.queue_scores import activate_version

    started = time.perf_counter()
    activate_version(ModelVersion.objects.get(project__slug=SLUG, is_active=True))
    print(f"  activate the version  {time.perf_counter() - started:6.1f} s", flush=True)
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE inference_queuescore")


def reset_reviews() -> None:
    """Put every patch back in its queues: no reviews, no leases, state as loaded."""
    from django.db import connection, transaction

    from annotations.models import Patch

    others = model_defaults(Patch, PATCH_COLUMNS)
    others.pop("created_at", None)  # loaded once; reviews do not change it
    assignments = "".join(f", {column} = %s" for column in others)
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SELECT id FROM annotations_project WHERE slug = %s", [SLUG])
        pid = cur.fetchone()[0]
        cur.execute(
            "UPDATE annotations_patch SET status = 'unreviewed', decisions = 0, version = 1, "
            f"current_label_id = original_label_id{assignments} WHERE project_id = %s AND id IN"
            " (SELECT patch_id FROM annotations_lease UNION SELECT patch_id FROM "
            "annotations_review)", [*others.values(), pid])
        cur.execute("UPDATE inference_queuescore q SET unreviewed = TRUE FROM "
                    "annotations_patch p WHERE p.id = q.patch_id AND p.project_id = %s "
                    "AND NOT q.unreviewed", [pid])
        for table in ("annotations_lease", "annotations_review"):
            cur.execute(f"DELETE FROM {table} WHERE patch_id IN "
                        "(SELECT id FROM annotations_patch WHERE project_id = %s)", [pid])
    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE annotations_patch, inference_queuescore, "
                    "annotations_lease, annotations_review")


def decided_twice() -> int:
    """Patches with more than one review row: the database's view of duplicate work."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM (SELECT patch_id FROM annotations_review "
                    "GROUP BY patch_id HAVING count(*) > 1) AS twice")
        return cur.fetchone()[0]


# ---------------------------------------------------------------------------------------
# Server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def gunicorn(workers: int, threads: int) -> Iterator[tuple[int, subprocess.Popen]]:
    """The real app under gunicorn on 127.0.0.1 (gthread workers when threads > 1)."""
    port = free_port()
    env = {**os.environ, "DEBUG": "0", "ALLOWED_HOSTS": "127.0.0.1"}
    env.pop("REDIS_URL", None)
    log = Path(f"/tmp/review_bench_gunicorn_{port}.log")
    cmd = [str(Path(sys.executable).with_name("gunicorn")), "spider_web.wsgi:application",
           "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
           "--threads", str(threads), "--keep-alive", "30", "--backlog", "256",
           "--graceful-timeout", "5"]
    with log.open("wb") as out:
        server = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {log.read_text()[-2000:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/api/auth/token/")
                conn.getresponse().read()
                conn.close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield port, server
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


# ---------------------------------------------------------------------------------------
# CPU accounting from /proc (no psutil in the venv)

TICK = os.sysconf("SC_CLK_TCK")


def _proc_stats() -> list[tuple[int, int, str, float]]:
    """(pid, ppid, command line, cpu seconds) of every process we may read."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_text()
            cmdline = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, UnicodeDecodeError):
            continue
        fields = raw[raw.rindex(")") + 2:].split()
        found.append((int(entry.name), int(fields[1]), cmdline,
                      (int(fields[11]) + int(fields[12])) / TICK))
    return found


def bench_backends() -> set[int]:
    """PIDs of the PostgreSQL backends connected to the bench database (the server's)."""
    import psycopg

    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        return {row[0] for row in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()")}


class BackendMeter:
    """CPU seconds of the PostgreSQL backends serving the bench database while the block
    runs. Backends come and go (CONN_MAX_AGE ends a connection after a minute and the
    server opens another), so they are sampled every half second and each counts from when
    it was first seen (from 0 if it connected meanwhile) to when it was last seen."""

    def __init__(self, every: float = 0.5) -> None:
        self.every = every
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self, initial: bool = False) -> None:
        backends = bench_backends()
        for pid, _, _, cpu in _proc_stats():
            if pid in backends:
                self.first.setdefault(pid, cpu if initial else 0.0)
                self.last[pid] = cpu

    def _run(self) -> None:
        while not self.stop.wait(self.every):
            self._sample()

    def __enter__(self) -> BackendMeter:
        self._sample(initial=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self._sample()

    @property
    def seconds(self) -> float:
        return sum(self.last[pid] - self.first[pid] for pid in self.last)


def cpu_snapshot(server_pid: int) -> dict[str, object]:
    """CPU seconds so far: per process of gunicorn and of any pytest run beside the bench
    (it shares the cores and skews latency), of this process and of the whole machine."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    procs = _proc_stats()
    return {
        "wall": time.monotonic(),
        "busy": (sum(values) - idle) / TICK,
        "gunicorn": {pid: c for pid, ppid, _, c in procs if server_pid in (pid, ppid)},
        "tests": {pid: c for pid, _, cmd, c in procs if "pytest" in cmd},
        "loadgen": sum(os.times()[:2]),
    }


CPU_PARTS = ("busy", "gunicorn", "postgres", "tests", "loadgen")


def cpu_seconds(before: dict[str, object], after: dict[str, object],
                postgres: float) -> dict[str, float]:
    """CPU seconds per component over an interval (``postgres``: a BackendMeter's), and its
    wall seconds ("wall"). Per process, so one that exits meanwhile does not count
    negative."""
    def delta(key: str) -> float:
        old, new = before[key], after[key]
        if isinstance(new, dict):
            return sum(c - old.get(pid, 0.0) for pid, c in new.items())
        return new - old

    return {"wall": after["wall"] - before["wall"], "postgres": postgres,
            **{key: delta(key) for key in CPU_PARTS if key != "postgres"}}


def cpu_use(used: dict[str, float]) -> str:
    """Cores used per component (2.00 = both cores of this machine)."""
    wall = used["wall"]
    rest = used["busy"] - sum(used[k] for k in CPU_PARTS[1:])
    return (f"cores busy {used['busy'] / wall:.2f}: gunicorn {used['gunicorn'] / wall:.2f}, "
            f"its postgres backends {used['postgres'] / wall:.2f}, load generator "
            f"{used['loadgen'] / wall:.2f}, pytest beside us {used['tests'] / wall:.2f}, "
            f"the rest {max(0.0, rest) / wall:.2f}")


# ---------------------------------------------------------------------------------------
# Load generator


class Client:
    """One reviewer's keep-alive HTTP/1.1 connection (stdlib: negligible client overhead)."""

    def __init__(self, port: int, token: str | None = None) -> None:
        self.port = port
        self.headers = {"Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = f"Token {token}"
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def post(self, path: str, payload: dict) -> tuple[int, dict, float]:
        """(status, JSON body, seconds); reconnects once if the server closed an idle socket."""
        body = json.dumps(payload).encode()
        for attempt in (0, 1):
            started = time.perf_counter()
            try:
                self.conn.request("POST", path, body=body, headers=self.headers)
                response = self.conn.getresponse()
                data = response.read()
                elapsed = time.perf_counter() - started
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                if attempt:
                    raise
        try:
            parsed = json.loads(data) if data else {}
        except ValueError:  # an HTML error page (a 500): counted by its status
            parsed = {}
        return response.status, parsed, elapsed

    def close(self) -> None:
        self.conn.close()


def issue_tokens(count: int) -> list[str]:
    """Fresh API tokens of reviewers 0..count-1, written here rather than through the token
    endpoint (each would cost a full password hash in the server under test)."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    users = list(get_user_model().objects.filter(
        username__in=[reviewer_name(n) for n in range(count)]).order_by("username"))
    Token.objects.filter(user__in=users).delete()  # one a kept database holds may be expired
    return [Token.objects.create(user=user).key for user in users]


@dataclass
class Tally:
    """What one phase observed, shared by the reviewer threads under a lock."""

    next_ms: list[float] = field(default_factory=list)
    submit_ms: list[float] = field(default_factory=list)
    decisions: int = 0
    empty: int = 0
    conflicts: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    late: int = 0  # paced slots started more than 100 ms late (the client could not keep up)


class Run:
    """The reviewers of one run: the leases each patch was handed, across its phases."""

    def __init__(self, port: int, tokens: list[str]) -> None:
        self.port = port
        self.tokens = tokens
        self.lock = threading.Lock()
        self.handed: dict[int, set[int]] = {}

        self.answered = 0  # decisions answered 201, over all phases

    def duplicates(self) -> int:
        return sum(len(who) > 1 for who in self.handed.values())

    def reviewer(self, n: int, queue: str, period: float | None, until: float,
                 tally: Tally, offset: float) -> None:
        """next + confirm until ``until``; paced on a fixed schedule when ``period`` is set."""
        client = Client(self.port, self.tokens[n])
        next_path = f"/api/projects/{SLUG}/queues/{queue}/next/"
        slot = time.monotonic() + offset
        next_ms, submit_ms = [], []
        decisions = empty = conflicts = late = 0
        errors: dict[str, int] = {}
        try:
            while True:
                if period is not None:
                    delay = slot - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    elif delay < -0.1:
                        late += 1
                        slot = time.monotonic()
                if time.monotonic() >= until:
                    break
                status, body, seconds = client.post(next_path, {"count": 1})
                next_ms.append(seconds * 1000)
                if status != 200:
                    errors[f"next {status}"] = errors.get(f"next {status}", 0) + 1
                    continue
                if not body["items"]:
                    empty += 1
                    continue
                item = body["items"][0]
                with self.lock:
                    self.handed.setdefault(item["patch"], set()).add(n)
                status, body, seconds = client.post(
                    f"/api/projects/{SLUG}/patches/{item['patch']}/reviews/",
                    {"action": "confirm", "patch_version": item["version"]})
                submit_ms.append(seconds * 1000)
                if status == 201:
                    decisions += 1
                elif status == 409:
                    conflicts += 1
                else:
                    errors[f"submit {status}"] = errors.get(f"submit {status}", 0) + 1
                if period is not None:
                    slot += period
        finally:
            client.close()
            with self.lock:
                tally.next_ms += next_ms
                tally.submit_ms += submit_ms
                tally.decisions += decisions
                self.answered += decisions
                tally.empty += empty
                tally.conflicts += conflicts
                tally.late += late
                for key, count in errors.items():
                    tally.errors[key] = tally.errors.get(key, 0) + count

    def phase(self, queue: str, seconds: float, paced: bool) -> tuple[Tally, float]:
        """All reviewers at once for ``seconds``; (tally, measured wall seconds)."""
        tally = Tally()
        started = time.monotonic()
        until = started + seconds
        threads = [threading.Thread(
            target=self.reviewer,
            args=(n, queue, 1.0 if paced else None, until, tally,
                  n / len(self.tokens) if paced else 0.0))  # paced starts spread over 1 s
            for n in range(len(self.tokens))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return tally, time.monotonic() - started


def percentiles(values: list[float]) -> tuple[float, float, float, float]:
    if len(values) < 2:
        v = values[0] if values else float("nan")
        return v, v, v, v
    q = statistics.quantiles(values, n=100, method="inclusive")
    return q[49], q[94], q[98], max(values)


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


@dataclass
class Phase:
    """The figures of one measured phase (the summary takes their medians over runs)."""

    queue: str
    paced: bool
    latency: dict[str, tuple[float, float, float]]  # call -> (p50, p95, p99) ms
    rate: float  # decisions answered 201 per second
    cpu_ms: dict[str, float]  # component -> CPU ms per decision
    load: str  # /proc/loadavg at the end of the phase
    duplicates: int = 0  # of the run the phase belongs to


def report(queue: str, paced: bool, tally: Tally, used: dict[str, float]) -> Phase:
    label = f"{queue} {'paced 1/s' if paced else 'unpaced'}"
    latency = {}
    for call, values in (("next", tally.next_ms), ("submit", tally.submit_ms)):
        p50, p95, p99, worst = percentiles(values)
        latency[call] = (p50, p95, p99)
        print(f"  {label:<26} {call:<7}{len(values):>7} {p50:8.1f} {p95:8.1f} {p99:8.1f} "
              f"{worst:8.1f}")
    decided = max(1, tally.decisions)
    cpu_ms = {part: used[part] * 1000 / decided for part in ("gunicorn", "postgres", "loadgen")}
    phase = Phase(queue, paced, latency, tally.decisions / used["wall"], cpu_ms, load_average())
    extra = f", late slots {tally.late}" if paced else ""
    print(f"  {'':<26} -> {phase.rate:.1f} decisions/s, 409s {tally.conflicts}, "
          f"empty {tally.empty}, errors {tally.errors or 0}{extra}")
    print(f"  {'':<26}    CPU per decision: gunicorn {cpu_ms['gunicorn']:.1f} ms, its "
          f"postgres backends {cpu_ms['postgres']:.1f} ms, load generator "
          f"{cpu_ms['loadgen']:.1f} ms; load average {phase.load}")
    print(f"  {'':<26}    {cpu_use(used)}", flush=True)
    return phase


def summary(runs: list[list[Phase]], duplicates: list[int], reviewers: int,
            config: str) -> None:
    """Medians over the runs of each phase, as a Markdown table (what the README quotes)."""
    print(f"\n== medians of {len(runs)} run(s): {reviewers} reviewers, gunicorn {config}")
    print("| queue | load | call | p50 ms | p95 ms | p99 ms | decisions/s | CPU ms per "
          "decision, gunicorn + postgres | load average |")
    print("|---|---|---|---|---|---|---|---|---|")
    for k, first_run in enumerate(runs[0]):
        group = [run[k] for run in runs]
        rate = statistics.median(p.rate for p in group)
        cpu = [statistics.median(p.cpu_ms[part] for p in group)
               for part in ("gunicorn", "postgres")]
        for call in ("next", "submit"):
            p50, p95, p99 = (statistics.median(p.latency[call][i] for p in group)
                             for i in range(3))
            lead = call == "next"
            load = "1/s each" if first_run.paced else "unpaced"
            print(f"| {first_run.queue if lead else ''} | {load if lead else ''} | {call} "
                  f"| {p50:.1f} | {p95:.1f} | {p99:.1f} | {f'{rate:.1f}' if lead else ''} "
                  f"| {f'{cpu[0]:.1f} + {cpu[1]:.1f}' if lead else ''} "
                  f"| {', '.join(p.load.split()[0] for p in group) if lead else ''} |")
    print(f"duplicate leases per run: {duplicates}", flush=True)


@contextlib.contextmanager
def killing_connections(every: float) -> Iterator[list[int]]:
    """End every other connection to the bench database each ``every`` seconds while the
    block runs (``every`` <= 0: nothing); yields the running count of connections ended."""
    import psycopg

    killed = [0]
    stop = threading.Event()

    def kill() -> None:
        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
            while not stop.wait(every):
                killed[0] += conn.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                ).fetchone()[0]

    thread = threading.Thread(target=kill, daemon=True) if every > 0 else None
    if thread:
        thread.start()
    try:
        yield killed
    finally:
        stop.set()
        if thread:
            thread.join()


def stored_reviews() -> int:
    from django.db import connection

    connection.close()  # ended by the fault run, most likely
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM annotations_review r JOIN annotations_patch p ON "
                    "p.id = r.patch_id JOIN annotations_project j ON j.id = p.project_id "
                    "WHERE j.slug = %s", [SLUG])
        return cur.fetchone()[0]


def bench_server(config: str, queues: list[str], paced_s: float, unpaced_s: float,
                 tokens: list[str], db_kills: float = 0, repeat: int = 1,
                 profile_s: float = 0) -> None:
    """Every phase against one gunicorn configuration, ``repeat`` times from a fresh review
    state; prints each phase, then the medians."""
    workers, threads = (int(x) for x in config.lower().split("x"))
    runs: list[list[Phase]] = []
    duplicates: list[int] = []
    with gunicorn(workers, threads) as (port, server):
        print(f"\n== gunicorn --workers {workers} --threads {threads} "
              f"(port {port}, {len(tokens)} reviewers)")
        for attempt in range(1, repeat + 1):
            reset_reviews()
            run = Run(port, tokens)
            print(f"-- run {attempt} of {repeat}")
            print(f"  {'phase':<26} {'call':<7}{'n':>7} {'p50 ms':>8} {'p95 ms':>8} "
                  f"{'p99 ms':>8} {'max ms':>8}")
            run.phase(queues[0], 3, paced=False)  # warm-up: connections, imports, caches
            phases: list[Phase] = []
            errors_5xx = 0
            with killing_connections(db_kills) as killed:
                for queue in queues:
                    for paced, seconds in ((True, paced_s), (False, unpaced_s)):
                        if seconds <= 0:
                            continue
                        with BackendMeter() as postgres:
                            before = cpu_snapshot(server.pid)
                            tally, _ = run.phase(queue, seconds, paced)
                            after = cpu_snapshot(server.pid)
                        used = cpu_seconds(before, after, postgres.seconds)
                        phases.append(report(queue, paced, tally, used))
                        errors_5xx += sum(n for key, n in tally.errors.items()
                                          if key.split()[-1].startswith("5"))
            stored = stored_reviews()
            for phase in phases:
                phase.duplicates = run.duplicates()
            runs.append(phases)
            duplicates.append(run.duplicates())
            print(f"  duplicate leases (patch handed to 2+ reviewers): {run.duplicates()}; "
                  f"patches with 2+ reviews in the database: {decided_twice()}", flush=True)
            if db_kills > 0:
                print(f"  fault run: {len(tokens)} reviewers, database connections ended "
                      f"every {db_kills:g} s ({killed[0]} in all): {run.answered} decisions "
                      f"answered 201 (warm-up included), {stored} review rows stored, lost "
                      f"{max(0, run.answered - stored)}, 5xx answers {errors_5xx}, "
                      f"duplicate leases {run.duplicates()}", flush=True)
        if runs and runs[0]:
            summary(runs, duplicates, len(tokens), config)
        if profile_s > 0:
            reset_reviews()
            run = Run(port, tokens)
            for queue in queues:
                profile_phase(run, server.pid, queue, profile_s)


# ---------------------------------------------------------------------------------------
# Where the server's Python time goes: py-spy over gunicorn while the reviewers work


def profile_phase(run: Run, server_pid: int, queue: str, seconds: float) -> None:
    """Sample gunicorn's workers with py-spy during ``seconds`` of unpaced reviewing and
    print the functions that hold the most of its (on-CPU) samples."""
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        raise SystemExit(f"--profile needs py-spy ({spy}): .venv/bin/pip install py-spy, "
                         "or install the dev extras")
    out = Path(f"/tmp/review_bench_profile_{queue}.txt")
    recorder = subprocess.Popen(
        # --gil: only the thread holding the GIL, i.e. Python at work; on a loaded machine a
        # thread back from a database wait but not yet on a core would look busy otherwise.
        [str(spy), "record", "--pid", str(server_pid), "--subprocesses", "--function",
         "--gil", "--nonblocking", "--format", "raw", "--rate", "250", "--duration",
         str(max(1, round(seconds))), "--output", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.5)  # attached before the reviewers start
    tally, wall = run.phase(queue, seconds, paced=False)
    _, err = recorder.communicate(timeout=60)
    if recorder.returncode:
        raise SystemExit(f"py-spy failed: {err.decode()[-500:]}")
    print(f"\n-- py-spy, {queue} unpaced for {seconds:g} s: "
          f"{tally.decisions / wall:.1f} decisions/s; raw stacks in {out}")
    print_profile(out, tally.decisions)


def _frame_name(frame: str) -> str:
    """'func (path:line)' with the path cut to the package: 'func (django/db/...py:12)'."""
    for marker in ("site-packages/", f"{ROOT}/"):
        if marker in frame:
            head, _, tail = frame.partition(marker)
            return f"{head.split(' (')[0]} ({tail}"
    return frame


def print_profile(path: Path, decisions: int, top: int = 30) -> None:
    """Inclusive (and self) samples per function of py-spy's raw (collapsed) stacks."""
    inclusive: dict[str, int] = {}
    leaf: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = [_frame_name(f) for f in stack.split(";") if not f.startswith("process ")]
        total += n
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + n
        if frames:
            leaf[frames[-1]] = leaf.get(frames[-1], 0) + n
    print(f"   {total} on-CPU samples ({total / max(1, decisions):.2f} per decision); "
          "inclusive share, then self share:")
    for frame, n in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]:
        print(f"   {100 * n / max(1, total):5.1f}%  {frame[:150]}")
    print("   self:")
    for frame, n in sorted(leaf.items(), key=lambda kv: -kv[1])[:12]:
        print(f"   {100 * n / max(1, total):5.1f}%  {frame[:150]}")


# ---------------------------------------------------------------------------------------
# In-process profile of one next and one submit


def explain(queues: list[str]) -> None:
    """Per-statement times of one next and one submit (each rolled back), and the plan of
    the slowest SELECT of each: where the server's time goes, without HTTP in the way."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from annotations.models import Project
    from annotations.queues import lease_next
    from annotations.reviewing import Decision, submit

    project = Project.objects.get(slug=SLUG)
    user = get_user_model().objects.get(username="bench-reviewer-00")

    def profile(title: str, call, setup=lambda: None) -> None:
        timings: list[tuple[float, str, object, str]] = []

        def timed(execute, sql, params, many, context):
            started = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                shown = connection.ops.last_executed_query(context["cursor"], sql, params)
                timings.append(((time.perf_counter() - started) * 1000, sql, params, shown))

        for attempt in ("warm", "measured"):
            timings.clear()
            with transaction.atomic():
                arg = setup()
                with connection.execute_wrapper(timed):
                    started = time.perf_counter()
                    call(arg)
                    total = (time.perf_counter() - started) * 1000
                transaction.set_rollback(True)
            if attempt == "measured":
                break
        ranked = sorted(timings, key=lambda t: -t[0])
        print(f"\n-- {title}: {total:.1f} ms in-process, {len(ranked)} statements, "
              f"{sum(t[0] for t in ranked):.1f} ms in the database driver; slowest:")
        for ms, _, _, shown in ranked[:6]:
            print(f"   {ms:7.2f} ms  {' '.join(shown.split())[:160]}")
        slowest = next((t for t in ranked if t[1].lstrip().upper().startswith("SELECT")), None)
        if slowest is None:
            return
        with transaction.atomic(), connection.cursor() as cur:
            setup()
            cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + slowest[1], slowest[2])
            plan = "\n".join("   " + row[0] for row in cur.fetchall())
            transaction.set_rollback(True)
        print(f"   EXPLAIN (ANALYZE, BUFFERS) of the slowest SELECT:\n   {slowest[3]}\n{plan}")

    reset_reviews()
    for queue in queues:
        profile(f"next ({queue})", lambda _, q=queue: lease_next(project, user, q, 1))

    def leased():
        return lease_next(project, user, queues[0], 1)[0].patch

    profile("submit (confirm)", lambda patch: submit(project, user, patch.pk,
                                                     Decision("confirm", patch.version)),
            setup=leased)


# ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", help="the bench database's URL (its name must contain "
                        f"'bench'); default $DATABASE_URL, else {DEFAULT_DB}")
    parser.add_argument("--patches", type=int, default=160_000)
    parser.add_argument("--tiles", type=int, default=2_700_000)
    parser.add_argument("--reuse", action="store_true",
                        help="keep the database if it already holds a project of this size")
    parser.add_argument("--reviewers", type=int, default=REVIEWERS,
                        help="concurrent reviewers, each with its own token and connection")
    parser.add_argument("--servers", default="2x4",
                        help="comma-separated gunicorn WORKERSxTHREADS configurations")
    parser.add_argument("--queues", default="disagreement,unreviewed")
    parser.add_argument("--paced-seconds", type=float, default=60)
    parser.add_argument("--unpaced-seconds", type=float, default=30)
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of every phase, each from a fresh review state; the "
                        "summary gives their medians")
    parser.add_argument("--explain", action="store_true",
                        help="profile one next and one submit in-process, with plans")
    parser.add_argument("--profile", type=float, default=0, metavar="SECONDS",
                        help="after the runs, sample the server with py-spy for SECONDS of "
                        "unpaced reviewing per queue and print where its time goes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--db-kills", type=float, default=0,
                        help="a fault run: end the server's database connections this often")
    args = parser.parse_args()
    if args.database:
        os.environ["DATABASE_URL"] = args.database
    queues = [q for q in args.queues.split(",") if q]

    import django

    print(f"database: {os.environ['DATABASE_URL']}; {os.cpu_count()} CPUs; "
          f"load average {load_average()}")
    db_name()
    wanted = (args.patches, args.tiles, args.patches)
    fresh = not (args.reuse and database_exists())
    if fresh:
        recreate_database()
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    if not fresh and loaded_sizes() != wanted:
        print(f"--reuse: database holds {loaded_sizes()}, wanted {wanted}; reloading")
        from django.db import connections

        connections.close_all()
        recreate_database()
        call_command("migrate", verbosity=0)
        fresh = True
    if fresh:
        print(f"loading {args.patches:,} patches, {args.tiles:,} tiles, predictions ...",
              flush=True)
        started = time.perf_counter()
        load(args.patches, args.tiles, args.seed)
        print(f"loaded in {time.perf_counter() - started:.1f} s", flush=True)
    else:
        print(f"reusing the loaded project ({args.patches:,} patches, {args.tiles:,} tiles)")
    sync_queue_scores()
    ensure_reviewers(args.reviewers)
    tokens = issue_tokens(args.reviewers)

    for config in args.servers.split(","):
        bench_server(config, queues, args.paced_seconds, args.unpaced_seconds, tokens,
                     args.db_kills, args.repeat, args.profile)
    if args.explain:
        explain(queues)


if __name__ == "__main__":
    main()
