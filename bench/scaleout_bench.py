"""Two gpu-queue workers sharing one embedding job, against one worker, printed (not a test).

Builds a SPIDER folder from the sample (--slides), imports it once into project "scaleout-N"
(one per --slides) of the database DATABASE_URL names (its own: the bench deletes that
project's embeddings),
registers a colour/texture model with a random head, then for 1 and then 2 workers: starts
that many real Celery worker processes on the gpu and default queues (OMP_NUM_THREADS=1 each:
one thread of work per worker, decoding in-process), runs one untimed job to warm them up,
then --repeats times deletes the project's embeddings and predictions, queues a predict job
as the page does and times it from queueing to the last tile embedded. Each worker's log says
which tiles it embedded; printed: tiles per worker, overlap (tiles embedded by more than one
worker), the time, the speed-up, and /proc/loadavg beside each run.

    DATABASE_URL=postgres://.../scale_h REDIS_URL=redis://127.0.0.1:6379/7 SECRET_KEY=x \\
        .venv/bin/python bench/scaleout_bench.py [--slides 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import io
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

EMBEDDED = re.compile(r"embedded (\d+) tiles of project (\d+) in space \d+: ids ([\d,-]+)")
WORKER_ENV = {"OMP_NUM_THREADS": "1", "SPIDER_EMBED_WORKERS": "0", "SPIDER_EMBED_CHUNK": "64",
              "SPIDER_EMBED_BATCH": "32", "SPIDER_TASK_STEP_SECONDS": "2",
              "SPIDER_EMBED_PARALLEL": "2"}


@dataclass
class Result:
    tiles: int
    seconds: float  # queueing the job -> the last tile embedded
    per_worker: list[int]  # tiles each worker's log says it embedded
    overlap: int  # tiles more than one worker embedded
    covered: int  # distinct tiles the logs name
    load: str


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def parse_ids(log: Path, project_id: int) -> list[int]:
    ids: list[int] = []
    for _count, project, ranges in EMBEDDED.findall(log.read_text(errors="replace")):
        if int(project) == project_id:
            for part in ranges.split(","):
                first, _, last = part.partition("-")
                ids.extend(range(int(first), int(last or first) + 1))
    return ids


def start_worker(log: Path, name: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, **WORKER_ENV}
    with log.open("wb") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "spider_web", "worker", "-Q", "gpu,default",
             "--pool", "solo", "-O", "fair", "--loglevel", "INFO", "--hostname", f"{name}@%h"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr,
            start_new_session=True)


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def prepare(slides: int) -> tuple[Any, Any]:
    """The bench's project and model, built once per database."""
    import torch
    from django.core.management import call_command
    from safetensors.torch import save_file

    from annotations.actions import get_or_create_project
    from annotations.models import LabelClass, Tile
    from annotations.sample_data import build_spider_folder
    from inference.modeling import SpiderContextHead, create_backbone
    from inference.models import ModelVersion

    project = get_or_create_project(f"scaleout-{slides}", name=f"Scale-out bench, {slides} slides")
    if not Tile.objects.filter(project=project).exists():
        folder = Path(tempfile.mkdtemp(prefix="scaleout-")) / "SPIDER-skin"
        build_spider_folder(folder, slides=slides, compress_level=6)
        call_command("import_spider", str(folder), project=project.slug, json=True,
                     stdout=io.StringIO())
    version = ModelVersion.objects.filter(project=project, name="texture").first()
    if version is None:
        classes = LabelClass.objects.filter(project=project).count()
        torch.manual_seed(0)
        head = SpiderContextHead(create_backbone("color-texture").config.embed_dim, classes)
        path = Path(tempfile.mkdtemp()) / "head.safetensors"
        save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(path))
        call_command("register_model", project=project.slug, name="texture",
                     backbone="color-texture", head=str(path), stdout=io.StringIO())
        version = ModelVersion.objects.get(project=project, name="texture")
    return project, version


def embed_once(project: Any, version: Any) -> tuple[float, int]:
    """Delete the project's embeddings and predictions, queue a predict job as the page does,
    wait for it; returns (seconds from queueing to the last tile embedded, tiles)."""
    from annotations.models import Tile
    from inference.actions import start_predict
    from inference.models import InferenceJob, Prediction, TileEmbedding

    TileEmbedding.objects.filter(space=version.space, tile__project=project).delete()
    Prediction.objects.filter(model_version=version).delete()
    tiles = Tile.objects.filter(project=project).count()
    start = time.perf_counter()
    job = start_predict(project, check=False)
    done = TileEmbedding.objects.filter(space=version.space, tile__project=project)
    wait_for(lambda: done.count() >= tiles, 1800, "every tile to be embedded")
    seconds = time.perf_counter() - start

    def finished() -> bool:
        job.refresh_from_db()
        return not job.is_live

    wait_for(finished, 600, "the job to finish")
    if job.status != InferenceJob.Status.SUCCEEDED:
        raise SystemExit(f"job {job.pk} {job.status}: {job.error}")
    return seconds, tiles


def run(project: Any, version: Any, workers: int, repeats: int, folder: Path) -> list[Result]:
    """``workers`` worker processes, warmed up by one untimed job (a worker builds its
    backbone on its first step: ~10 s here, once per process life), then ``repeats`` jobs."""
    from annotations import lifecycle
    from inference.models import InferenceJob
    from spider_web.celery import app

    for job in InferenceJob.objects.filter(project=project):  # an interrupted run's job
        if job.is_live:
            lifecycle.cancel(job)
    app.control.purge()
    logs = [folder / f"worker-{workers}-{i}.log" for i in range(workers)]
    procs = [start_worker(log, f"scaleout{workers}-{i}") for i, log in enumerate(logs)]
    results = []
    try:
        wait_for(lambda: all(b" ready." in log.read_bytes() for log in logs), 180,
                 "the workers to be ready")
        embed_once(project, version)  # warm-up: every worker has taken a step by the end
        for _ in range(repeats):
            before = [len(parse_ids(log, project.pk)) for log in logs]
            seconds, tiles = embed_once(project, version)
            per_worker = [parse_ids(log, project.pk)[n:] for log, n in zip(logs, before,
                                                                           strict=True)]
            counts = Counter(i for ids in per_worker for i in ids)
            results.append(Result(tiles, seconds, [len(ids) for ids in per_worker],
                                  sum(1 for n in counts.values() if n > 1), len(counts),
                                  loadavg()))
            r = results[-1]
            print(f"{workers} worker(s): {r.tiles} tiles in {r.seconds:.1f} s, per worker "
                  f"{r.per_worker}, overlap {r.overlap}, covered {r.covered}, load {r.load}",
                  flush=True)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=60)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--slides", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop the workers on the way out
    if not os.environ.get("REDIS_URL"):
        raise SystemExit("set REDIS_URL (and DATABASE_URL): the workers need a real broker")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spider_web.settings")
    os.environ.setdefault("MEDIA_ROOT", str(Path(tempfile.gettempdir()) / "scaleout-media"))
    os.environ.setdefault("SPIDER_JOB_SWEEP_SECONDS", "0")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    project, version = prepare(args.slides)
    folder = Path(tempfile.mkdtemp(prefix="scaleout-logs-"))
    results = {workers: run(project, version, workers, args.repeats, folder)
               for workers in (1, 2)}
    one = statistics.median(r.seconds for r in results[1])
    two = statistics.median(r.seconds for r in results[2])
    print(f"median: 1 worker {one:.1f} s, 2 workers {two:.1f} s, speed-up {one / two:.2f}x; "
          f"tiles embedded twice: {max(r.overlap for r in results[2])}")
    print(f"worker logs: {folder}")


if __name__ == "__main__":
    main()
