"""Import speed and memory against the floor of merely reading and hashing the same files.

For each size N, a synthetic SPIDER folder of N records (tiles cut from the real sample image
with shared context, like SPIDER) is built once under --workdir and reused. Sizes above
--unique-limit are made of copies of that size's folder: every file hard-linked under a
new name per copy (renamed records, slides and context), so 160k records stay a few GiB of
distinct bytes that the page cache holds; the copies' tiles dedup to the same content.

Each run, alternating so that both see the same load:
  1. reads and sha256-hashes every referenced file (the floor any importer pays), and
  2. imports the folder with ``manage.py import_spider --link`` in a child process, as a
     user runs it (system checks included), into a fresh project; the child reports its
     own peak RSS (VmHWM).
Prints per run and the median over --repeat runs: tiles/s of both, their ratio, records/s,
peak RSS, the load average, and the CPU seconds of both sides (the import's counting its
file-check processes and its PostgreSQL backend), whose ratio a loaded machine disturbs
less than the wall-time one.
The ratio is given twice: for the whole command (Python and Django start-up, about 1 s,
included) and for the import's own time as its --json reports it (``seconds``), the
figure that grows with the dataset.

Usage: DATABASE_URL=postgres://... python bench/import_bench.py [--records 5000 20000]
       [--repeat 3] [--workdir .cache/bench]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spider_web.settings")


def iter_metadata(folder: Path):  # type: ignore[no-untyped-def]
    import ijson

    with open(folder / "metadata.json", "rb") as handle:
        yield from ijson.items(handle, "item")


def referenced_files(folder: Path) -> tuple[int, list[Path]]:
    """(records, the files they name), read as a stream (160k records are ~200 MB)."""
    names: set[str] = set()
    records = 0
    for record in iter_metadata(folder):
        records += 1
        names.add(record["image_name"])
        names.update(record["context_info"].values())
    return records, [folder / "images" / name for name in sorted(names)]


def read_and_hash(files: list[Path]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of reading and hashing ``files`` one after another."""
    start, cpu = time.perf_counter(), time.process_time()
    for file in files:
        hashlib.sha256(file.read_bytes()).hexdigest()
    return time.perf_counter() - start, time.process_time() - cpu


# The child reports its own address space's high-water mark at exit. The rusage of a child
# (os.wait4) would not do: it counts the pages it shared with this big parent between fork
# and exec, and so reported the bench's own size (~207 MiB) rather than the import's.
# It also reports its CPU seconds and those of its PostgreSQL backend (same machine), which
# a loaded machine disturbs far less than wall time.
PEAK_WRAPPER = (
    "import atexit, os, re, runpy, sys\n"
    "from django.db.backends.base import base\n"
    "backends = {}\n"
    "def backend_cpu(db):\n"
    "    try:\n"
    "        pid = db.connection.info.backend_pid\n"
    "        stat = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()\n"
    "        backends[pid] = (int(stat[11]) + int(stat[12])) / os.sysconf('SC_CLK_TCK')\n"
    "    except Exception:\n"
    "        pass\n"
    "close = base.BaseDatabaseWrapper.close\n"
    "def closing(db):\n"
    "    backend_cpu(db)\n"
    "    close(db)\n"
    "base.BaseDatabaseWrapper.close = closing\n"
    "def peak():\n"
    "    status = open('/proc/self/status').read()\n"
    "    sys.stderr.write('VmHWM ' + re.search(r'VmHWM:\\s+(\\d+)', status).group(1) + '\\n')\n"
    "    times = os.times()\n"
    "    cpu = times.user + times.system + times.children_user + times.children_system\n"
    "    sys.stderr.write(f'CPU {cpu}\\n')\n"
    "    from django.db import connection\n"
    "    backend_cpu(connection)\n"
    "    sys.stderr.write(f'DBCPU {sum(backends.values())}\\n')\n"
    "atexit.register(peak)\n"
    "sys.argv = sys.argv[1:]\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


def run_import(folder: Path, link: bool) -> tuple[float, dict, int, float]:
    """(seconds, report, peak RSS in MiB, CPU seconds of the child and its database
    backend) of one import into a fresh project, in a child."""
    slug = f"bench-{uuid.uuid4().hex[:8]}"
    cmd = [sys.executable, "-c", PEAK_WRAPPER, str(ROOT / "manage.py"), "import_spider",
           str(folder), "--project", slug, "--json"] + (["--link"] if link else [])
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out_file:
        child = subprocess.Popen(cmd, stdout=out_file, stderr=subprocess.PIPE, cwd=ROOT)
        assert child.stderr is not None
        errors = child.stderr.read().decode()
        child.wait()
        seconds = time.perf_counter() - start
        if child.returncode:
            raise RuntimeError(f"import failed: {errors[-2000:]}")
        peak_kib = int(re.findall(r"^VmHWM (\d+)$", errors, re.M)[-1])
        cpu = sum(float(x) for x in re.findall(r"^(?:CPU|DBCPU) ([\d.]+)$", errors, re.M))
        out_file.seek(0)
        out = out_file.read().decode()
    subprocess.run([sys.executable, str(ROOT / "manage.py"), "shell", "-v", "0", "-c",
                    f"from annotations.models import Project; "
                    f"Project.objects.filter(slug='{slug}').delete()"],
                   check=True, cwd=ROOT)
    return seconds, json.loads(out), peak_kib // 1024, cpu


def build(folder: Path, records: int) -> None:
    import django

    django.setup()
    from annotations.sample_data import build_spider_folder

    slides = max(1, records // 40 + 1)
    build_spider_folder(folder, slides=slides, max_records=records, plant_fraction=0.0,
                        compress_level=1)


def build_copies(folder: Path, base: Path, records: int) -> None:
    """``records`` records made of copies of ``base``: files hard-linked under a prefix per
    copy, records renamed to match (a copy's slides are new slides)."""
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    base_records = list(iter_metadata(base))
    copies = -(-records // len(base_records))
    written = 0
    with open(folder / "metadata.json.part", "w", encoding="utf-8") as out:
        out.write("[")
        for copy in range(copies):
            prefix = f"c{copy}_"
            for file in (base / "images").iterdir():
                target = images / (prefix + file.name)
                if not target.exists():
                    os.link(file, target)
            for record in base_records:
                if written == records:
                    break
                renamed = {**record, "slide_id": prefix + record["slide_id"],
                           "image_name": prefix + record["image_name"],
                           "context_info": {k: prefix + v
                                            for k, v in record["context_info"].items()}}
                out.write(("," if written else "") + json.dumps(renamed) + "\n")
                written += 1
        out.write("]")
    (folder / "metadata.json.part").rename(folder / "metadata.json")


def ensure_folder(workdir: Path, records: int, unique_limit: int) -> Path:
    folder = workdir / f"n{records}"
    if (folder / "metadata.json").exists():
        return folder
    if records <= unique_limit:
        print(f"building {records} records in {folder} ...", flush=True)
        build(folder, records)
    else:
        base = ensure_folder(workdir, unique_limit, unique_limit)
        print(f"building {records} records in {folder} from copies of {base} ...", flush=True)
        build_copies(folder, base, records)
    return folder


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def bench(folder: Path, repeat: int, link: bool) -> None:
    n_records, files = referenced_files(folder)
    inodes = {(st.st_dev, st.st_ino): st.st_size for st in (f.stat() for f in files)}
    print(f"\n== {folder.name}: {n_records} records, {len(files)} tile files, "
          f"{sum(inodes.values()) / 2**20:.0f} MiB of PNG in {len(inodes)} distinct files",
          flush=True)
    read_and_hash(files)  # warm the page cache so both sides read from memory
    runs = []
    for run in range(repeat):
        floor_s, floor_cpu = read_and_hash(files)
        import_s, report, peak, import_cpu = run_import(folder, link)
        assert report["patches_created"] == n_records and not report["skipped"], report
        own_s = report["seconds"]
        runs.append((floor_s, import_s, peak, floor_cpu, import_cpu, own_s))
        print(f"run {run + 1}: read+hash {len(files) / floor_s:7.0f} tiles/s, import "
              f"{len(files) / import_s:7.0f} tiles/s ({n_records / import_s:6.0f} records/s),"
              f" ratio {floor_s / import_s:.0%} (own time {own_s:.2f} s: "
              f"{floor_s / own_s:.0%}), peak RSS {peak} MiB | CPU s: read+hash "
              f"{floor_cpu:.1f}, import + its database {import_cpu:.1f} | load {load()}",
              flush=True)
    floor_s = statistics.median(r[0] for r in runs)
    import_s = statistics.median(r[1] for r in runs)
    ratio = statistics.median(r[0] / r[1] for r in runs)
    cpu_ratio = statistics.median(r[3] / r[4] for r in runs)
    own_ratio = statistics.median(r[0] / r[5] for r in runs)
    print(f"{folder.name} median of {repeat}: read+hash {len(files) / floor_s:.0f} tiles/s | "
          f"import{' --link' if link else ' (copy)'} {len(files) / import_s:.0f} tiles/s, "
          f"{n_records / import_s:.0f} records/s | ratio {ratio:.0%} (goal >= 50%), "
          f"own time {own_ratio:.0%} | "
          f"CPU ratio {cpu_ratio:.0%} | peak RSS {max(r[2] for r in runs)} MiB | "
          f"load {load()}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, nargs="+", default=[5000, 20000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--copy", action="store_true", help="copy tiles instead of --link")
    parser.add_argument("--unique-limit", type=int, default=20_000,
                        help="larger sizes are hard-linked copies of this size's folder")
    parser.add_argument("--workdir", type=Path, default=ROOT / ".cache" / "bench")
    args = parser.parse_args()
    print(f"database: {os.environ.get('DATABASE_URL', 'sqlite (default)')}; "
          f"{os.cpu_count()} cores; load {load()}")
    folders = [ensure_folder(args.workdir, n, args.unique_limit) for n in args.records]
    for folder in folders:
        bench(folder, args.repeat, link=not args.copy)


if __name__ == "__main__":
    main()
