"""Where an import's time goes: batch sizes, CPU per thread, and the cost of reading a tile.

Runs in this process on a folder that bench/import_bench.py built (default its 20k one), each
import into a fresh project that is deleted afterwards:
  1. ``--batches``: SPIDER_IMPORT_BATCH values, interleaved ``--repeat`` times; wall seconds
     and CPU seconds (this process, its file-check processes and its PostgreSQL backend),
     medians; then ``--workers``,
     SPIDER_IMPORT_WORKERS values (the file-check processes), the same way;
  2. CPU seconds of one import at the configured settings, per part: the writing thread, the
     file-check processes (read, sha256, PNG checks), the threads receiving their answers
     and the PostgreSQL backend (read from /proc, so the database must run on this host);
  3. microseconds per tile to read every file of the folder on one thread with
     ``Path.read_bytes`` and with ``localfiles.read_file``, medians of 5 passes.

Usage: DATABASE_URL=postgres://... python bench/import_parts.py [--folder .cache/bench/n20000]
       [--batches 500 2000 4000] [--workers 1 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spider_web.settings")
TICK = os.sysconf("SC_CLK_TCK")


def cpu_of(stat_path: str) -> float:
    """CPU seconds (user + system) of the task or process whose stat file is ``stat_path``."""
    fields = Path(stat_path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def peak_mib(pid: int) -> int:
    """Peak RSS (VmHWM) of a running process, in MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) // 1024


def own_cpu() -> float:
    """CPU seconds of this process and of its children that have ended (the import's
    file-check processes end with it)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def backend_cpu() -> float:
    from django.db import connection

    connection.ensure_connection()
    return cpu_of(f"/proc/{connection.connection.info.backend_pid}/stat")


def one_import(folder: Path, done: Callable[[], None] = lambda: None) -> tuple[float, float]:
    """(wall, CPU of this process and its backend) of one import into a fresh project;
    ``done`` runs right after the import, before the project is deleted."""
    from annotations.importing import import_spider
    from annotations.models import Project

    project = Project.objects.create(name="parts", slug=f"parts-{uuid.uuid4().hex[:8]}")
    backend, start, cpu = backend_cpu(), time.perf_counter(), own_cpu()
    import_spider(project, folder, link=True)
    result = (time.perf_counter() - start, own_cpu() - cpu + backend_cpu() - backend)
    done()
    project.delete()
    return result


def sweep(folder: Path, setting: str, values: list[int], repeat: int) -> None:
    """One import per value of ``setting``, interleaved ``repeat`` times; medians."""
    from django.conf import settings

    runs: dict[int, list[tuple[float, float]]] = {value: [] for value in values}
    default = getattr(settings, setting)
    try:
        for _ in range(repeat):
            for value in values:
                setattr(settings, setting, value)
                runs[value].append(one_import(folder))
    finally:
        setattr(settings, setting, default)
    for value, found in runs.items():
        walls = ", ".join(f"{wall:.2f}" for wall, _ in found)
        print(f"{setting}={value:<5d}: wall median {statistics.median(w for w, _ in found):.2f} s "
              f"({walls}), CPU median {statistics.median(c for _, c in found):.2f} s",
              flush=True)


def per_thread(folder: Path) -> None:
    """CPU per part, read just before the writer closes (its processes and threads then
    end)."""
    from django.conf import settings

    from annotations.importing import writer

    seen: dict[str, float] = {}
    peaks: list[int] = []
    close = writer.ProjectWriter.close

    def counted_close(self: writer.ProjectWriter) -> None:
        if not seen:
            pids = self._checkers.pids if self._checkers is not None else []
            seen["file-check processes"] = sum(cpu_of(f"/proc/{pid}/stat") for pid in pids)
            peaks.extend(peak_mib(pid) for pid in pids)
            for thread in threading.enumerate():
                if thread.name.startswith("import"):
                    part = "answer threads" if thread.name == "import-checks" else "file threads"
                    seen[part] = seen.get(part, 0.0) + cpu_of(
                        f"/proc/self/task/{thread.native_id}/stat")
        close(self)

    main = f"/proc/self/task/{threading.get_native_id()}/stat"
    backend, before = backend_cpu(), cpu_of(main)

    def done() -> None:
        seen["writing thread"] = cpu_of(main) - before
        seen["PostgreSQL backend"] = backend_cpu() - backend

    writer.ProjectWriter.close = counted_close  # type: ignore[method-assign]
    try:
        wall, _ = one_import(folder, done)
    finally:
        writer.ProjectWriter.close = close  # type: ignore[method-assign]
    parts = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in seen.items())
    print(f"CPU per part, batch {settings.SPIDER_IMPORT_BATCH}, "
          f"{settings.SPIDER_IMPORT_WORKERS} workers, wall {wall:.2f} s: {parts}; peak RSS of "
          f"the file-check processes {', '.join(f'{p} MiB' for p in peaks)}", flush=True)


def tile_reads(folder: Path) -> None:
    from annotations.localfiles import read_file

    files = sorted((folder / "images").iterdir())
    for name, read in (("Path.read_bytes", Path.read_bytes), ("localfiles.read_file", read_file)):
        passes = []
        for _ in range(5):
            start = time.perf_counter()
            for file in files:
                read(file)
            passes.append(time.perf_counter() - start)
        print(f"{name:20s} {statistics.median(passes) / len(files) * 1e6:6.1f} us per tile "
              f"({len(files)} files, median of 5 passes)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, default=ROOT / ".cache" / "bench" / "n20000")
    parser.add_argument("--batches", type=int, nargs="+", default=[500, 2000, 4000])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not (args.folder / "metadata.json").is_file():
        sys.exit(f"{args.folder}: no metadata.json; build it with bench/import_bench.py")
    import django

    django.setup()
    print(f"{args.folder}: {os.cpu_count()} cores, load "
          f"{' '.join(Path('/proc/loadavg').read_text().split()[:3])}", flush=True)
    tile_reads(args.folder)
    sweep(args.folder, "SPIDER_IMPORT_BATCH", args.batches, args.repeat)
    sweep(args.folder, "SPIDER_IMPORT_WORKERS", args.workers, args.repeat)
    per_thread(args.folder)


if __name__ == "__main__":
    main()
