"""Export speed and memory against the floor of writing the same image bytes with pyarrow.

Builds (or reuses) SPIDER folders of N and N/4 records with bench/import_bench.py's builder,
imports each once with ``import_spider --link`` into a project kept for later runs, then:
  1. floor: reads every exported centre tile and writes the bytes to one parquet file with
     pyarrow directly (same row groups and writer options as the export), in this process;
  2. ``manage.py export_hf`` of the N-record project in a child process, ``--repeat`` times
     (the command's own export time, excluding Python/Django start-up, and the child's peak
     RSS via os.wait4), and once for N/4 records to show memory stays flat.

Usage: DATABASE_URL=postgres://... python bench/export_bench.py [--patches 20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.import_bench import ROOT, build  # the same folder builder as the import bench

MANAGE = [sys.executable, str(ROOT / "manage.py")]


def child(cmd: list[str]) -> tuple[float, str, int]:
    """(seconds, stdout, peak RSS in MiB) of one child process."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out_file:
        process = subprocess.Popen(cmd, stdout=out_file, stderr=subprocess.PIPE, cwd=ROOT)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status):
            raise RuntimeError(f"{cmd[2]} failed: {process.stderr.read().decode()[-2000:]}")
        out_file.seek(0)
        return seconds, out_file.read().decode(), usage.ru_maxrss // 1024


def ensure_project(folder: Path, records: int) -> str:
    """A project holding ``folder``'s records (imported with --link once, then reused)."""
    from annotations.models import Patch

    slug = f"export-bench-{records}"
    if Patch.objects.filter(project__slug=slug).count() != records:
        if not (folder / "metadata.json").exists():
            print(f"building {records} records in {folder} ...", flush=True)
            build(folder, records)
        print(f"importing {folder} into {slug} ...", flush=True)
        child([*MANAGE, "import_spider", str(folder), "--project", slug, "--link", "--json"])
    return slug


def centre_files(slug: str) -> list[str]:
    """The exported centre tiles' files (linked imports: absolute paths), in export order."""
    from annotations.exporting.selection import SPLIT_ORDER
    from annotations.models import Patch, PatchStatus

    patches = Patch.objects.filter(project__slug=slug).exclude(status=PatchStatus.EXCLUDED)
    return [path for split in SPLIT_ORDER for path in patches.filter(split=split)
            .order_by("id").values_list("centre_tile__file", flat=True)]


def pyarrow_floor(files: list[str], target: Path) -> float:
    """Seconds to read ``files`` and write their bytes as an image column with pyarrow."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from annotations.exporting.hf import image_array
    from annotations.exporting.parquet import ROW_GROUP, writer_options

    schema = pa.schema([("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())]))])
    start = time.perf_counter()
    with pq.ParquetWriter(target, schema, **writer_options(schema, {"image"})) as writer:
        for i in range(0, len(files), ROW_GROUP):
            data = [Path(f).read_bytes() for f in files[i:i + ROW_GROUP]]
            writer.write_table(pa.table({"image": image_array(data)}, schema=schema))
    seconds = time.perf_counter() - start
    target.unlink()
    return seconds


def export(slug: str, workdir: Path) -> tuple[float, float, int, dict]:
    """(export seconds, wall seconds, peak RSS MiB, result) of one export_hf run."""
    out = workdir / f"out-{slug}"
    shutil.rmtree(out, ignore_errors=True)
    wall, stdout, peak = child([*MANAGE, "export_hf", "--project", slug, "--out", str(out),
                                "--json"])
    result = json.loads(stdout)
    shutil.rmtree(out)
    return result["seconds"], wall, peak, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patches", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    import django

    django.setup()
    subprocess.run([*MANAGE, "migrate", "-v", "0"], check=True, cwd=ROOT)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="spider-export-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    small_n, large_n = args.patches // 4, args.patches
    small = ensure_project(workdir / f"n{small_n}", small_n)
    large = ensure_project(workdir / f"n{large_n}", large_n)

    files = centre_files(large)
    print(f"database: {os.environ.get('DATABASE_URL', 'sqlite (default)')}")
    print(f"{len(files)} patches, {sum(os.path.getsize(f) for f in files) / 2**20:.0f} MiB "
          "of centre PNGs")
    pyarrow_floor(files, workdir / "floor.parquet")  # warm the page cache for both sides
    floor = statistics.median(pyarrow_floor(files, workdir / "floor.parquet")
                              for _ in range(args.repeat))
    runs = [export(large, workdir) for _ in range(args.repeat)]
    assert runs[0][3]["rows"] == len(files), runs[0][3]["rows"]
    export_s = statistics.median(r[0] for r in runs)
    wall_s = statistics.median(r[1] for r in runs)
    _, _, peak_small, _ = export(small, workdir)
    peak_large = max(r[2] for r in runs)
    n = len(files)
    print(f"pyarrow directly : {n / floor:8.0f} patches/s (read + write, median of "
          f"{args.repeat})")
    print(f"export_hf        : {n / export_s:8.0f} patches/s (export itself; "
          f"{n / wall_s:.0f}/s with process start-up), median of {args.repeat}")
    print(f"export / pyarrow = {floor / export_s:.0%}  (goal >= 70%)")
    print(f"peak RSS of the export process: {peak_small} MiB at {small_n} patches, "
          f"{peak_large} MiB at {large_n} patches")


if __name__ == "__main__":
    main()
