"""Import speed and memory against the floor of merely reading and hashing the same files.

Builds a synthetic SPIDER folder of N records (tiles cut from the real sample image with
shared context, like SPIDER), then in one run:
  1. reads and sha256-hashes every referenced file (the floor any importer pays),
  2. imports it with ``manage.py import_spider --link`` in a child process (peak RSS of the
     child is the import's own), and the same for N/4 records to show memory stays flat.

Usage: DATABASE_URL=postgres://... python bench/import_bench.py [--records 20000] [--repeat 3]
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


def referenced_files(folder: Path) -> list[Path]:
    records = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))
    names = {r["image_name"] for r in records}
    names |= {n for r in records for n in r["context_info"].values()}
    return [folder / "images" / name for name in sorted(names)]


def read_and_hash(files: list[Path]) -> float:
    start = time.perf_counter()
    for file in files:
        hashlib.sha256(file.read_bytes()).hexdigest()
    return time.perf_counter() - start


# The child reports its own address space's high-water mark at exit. The rusage of a child
# (os.wait4) would not do: it counts the pages it shared with this big parent between fork
# and exec, and so reported the bench's own size (~207 MiB) rather than the import's.
PEAK_WRAPPER = (
    "import atexit, re, runpy, sys\n"
    "def peak():\n"
    "    status = open('/proc/self/status').read()\n"
    "    sys.stderr.write('VmHWM ' + re.search(r'VmHWM:\\s+(\\d+)', status).group(1) + '\\n')\n"
    "atexit.register(peak)\n"
    "sys.argv = sys.argv[1:]\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


def run_import(folder: Path, link: bool) -> tuple[float, dict, int]:
    """(seconds, report, peak RSS in MiB) of one import into a fresh project, in a child
    (``manage.py import_spider`` as a user runs it, system checks included)."""
    slug = f"bench-{uuid.uuid4().hex[:8]}"
    cmd = [sys.executable, "-c", PEAK_WRAPPER, str(ROOT / "manage.py"), "import_spider",
           str(folder), "--project", slug, "--json"] + (["--link"] if link else [])
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out_file:
        child = subprocess.Popen(cmd, stdout=out_file, stderr=subprocess.PIPE, cwd=ROOT)
        errors = child.stderr.read().decode()
        child.wait()
        seconds = time.perf_counter() - start
        if child.returncode:
            raise RuntimeError(f"import failed: {errors[-2000:]}")
        peak_kib = int(re.findall(r"^VmHWM (\d+)$", errors, re.M)[-1])
        out_file.seek(0)
        out = out_file.read().decode()
    subprocess.run([sys.executable, str(ROOT / "manage.py"), "shell", "-v", "0", "-c",
                    f"from annotations.models import Project; "
                    f"Project.objects.filter(slug='{slug}').delete()"],
                   check=True, cwd=ROOT)
    return seconds, json.loads(out), peak_kib // 1024


def build(folder: Path, records: int) -> None:
    import django

    django.setup()
    from annotations.sample_data import build_spider_folder

    slides = max(1, records // 40 + 1)
    build_spider_folder(folder, slides=slides, max_records=records, plant_fraction=0.0,
                        compress_level=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--copy", action="store_true", help="copy tiles instead of --link")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="spider-import-bench-"))
    small, large = workdir / f"n{args.records // 4}", workdir / f"n{args.records}"
    for folder, n in ((small, args.records // 4), (large, args.records)):
        if not (folder / "metadata.json").exists():
            print(f"building {n} records in {folder} ...", flush=True)
            build(folder, n)
    files = referenced_files(large)
    n_records = len(json.loads((large / "metadata.json").read_text()))
    print(f"database: {os.environ.get('DATABASE_URL', 'sqlite (default)')}")
    print(f"{n_records} records, {len(files)} unique tiles, "
          f"{sum(f.stat().st_size for f in files) / 2**20:.0f} MiB of PNG")
    read_and_hash(files)  # warm the page cache so both sides read from memory
    floor = [read_and_hash(files) for _ in range(args.repeat)]
    imports = [run_import(large, link=not args.copy) for _ in range(args.repeat)]
    _, _, peak_small = run_import(small, link=not args.copy)
    _, _, peak_large = run_import(large, link=not args.copy)
    floor_s = statistics.median(floor)
    import_s = statistics.median(s for s, _, _ in imports)
    report = imports[0][1]
    assert report["patches_created"] == n_records and not report["skipped"], report
    print(f"read+hash only : {len(files) / floor_s:9.0f} tiles/s (median of {args.repeat})")
    print(f"import{' --link' if not args.copy else ' (copy)'} : {len(files) / import_s:9.0f} "
          f"tiles/s, {n_records / import_s:7.0f} records/s (median of {args.repeat})")
    print(f"import / read+hash = {floor_s / import_s:.0%}  (goal >= 50% with --link)")
    print(f"peak RSS of the import process: {peak_small} MiB at {args.records // 4} records, "
          f"{peak_large} MiB at {args.records} records")


if __name__ == "__main__":
    main()
