"""Export speed and memory against writing the very same parquet files with pyarrow directly.

For each size N (default 4,000 and 40,000 patches) it builds (or reuses) a SPIDER folder with
bench/import_bench.py's builder, imports it once with ``import_spider --link`` into a project
kept for later runs, then, ``--repeat`` times, interleaved so both sides see the same load:
  1. ``manage.py export_hf`` in a child process: the command's own export time (excluding
     Python/Django start-up) and the child's peak RSS (VmHWM, read in the child itself);
  2. the floor, also in a fresh child process (its own time, without start-up): for each
     shard of that export, read every centre tile file in row order and write it with the
     same other columns, schema, writer options and row groups with pyarrow directly,
     single-threaded. The first floor run checks that its files have the export's sha256:
     both sides write the same columns and bytes. The floor does not hash, query the
     database or record a job; the export does all three. A floor run in this long-lived
     process would have pyarrow's allocator warm from the runs before, which no export run
     has (on this VM a warm process wrote the same export up to 2x faster).

Usage: DATABASE_URL=postgres://... python bench/export_bench.py [--sizes 4000 40000]
           [--repeat 3 1]   (repeats per size; the last one applies to the sizes after it)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.import_bench import PEAK_WRAPPER, ROOT, build  # the import bench's builder

MANAGE = [sys.executable, str(ROOT / "manage.py")]
PEAKED = [sys.executable, "-c", PEAK_WRAPPER, str(ROOT / "manage.py")]


def load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def child(cmd: list[str]) -> tuple[float, str, int | None]:
    """(wall seconds, stdout, peak RSS in MiB if the child reported it) of one child."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out_file:
        process = subprocess.Popen(cmd, stdout=out_file, stderr=subprocess.PIPE, cwd=ROOT)
        errors = process.stderr.read().decode() if process.stderr else ""
        process.wait()
        seconds = time.perf_counter() - start
        if process.returncode:
            raise RuntimeError(f"{' '.join(cmd[-6:])} failed: {errors[-2000:]}")
        peaks = re.findall(r"^VmHWM (\d+)$", errors, re.M)
        out_file.seek(0)
        return seconds, out_file.read().decode(), int(peaks[-1]) // 1024 if peaks else None


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


@dataclass
class Run:
    seconds: float  # the command's own export time
    cpu: float  # CPU seconds of the export itself, all its threads
    wall: float  # with process start-up
    peak_mib: int
    result: dict


def export(slug: str, out: Path) -> Run:
    """One ``manage.py export_hf`` into ``out`` (which the caller removes)."""
    wall, stdout, peak = child([*PEAKED, "export_hf", "--project", slug, "--out", str(out),
                                "--json"])
    result = json.loads(stdout)
    assert peak is not None, "the child did not report its peak RSS"
    return Run(result["seconds"], result["cpu_seconds"], wall, peak, result)


@dataclass
class Shard:
    name: str
    sha256: str
    schema: object  # pa.Schema, with the export's metadata
    groups: list[tuple[list[str], object]]  # (centre tile files, the other columns: pa.Table)


def floor_input(out: Path, files: dict[str, str]) -> list[Shard]:
    """What the floor writes: per shard of the export in ``out``, its row groups' centre tile
    files (in row order) and their other columns, held in memory."""
    import pyarrow.parquet as pq

    from annotations.models import Patch

    shards = []
    for name, sha in files.items():
        if not name.endswith(".parquet"):
            continue
        parquet = pq.ParquetFile(out / name)
        groups = []
        for i in range(parquet.num_row_groups):
            rest = parquet.read_row_group(i, columns=[f for f in parquet.schema_arrow.names
                                                      if f != "image"])
            ids = rest.column("patch_id").to_pylist()
            where = dict(Patch.objects.filter(pk__in=ids)
                         .values_list("pk", "centre_tile__file"))
            groups.append(([where[pk] for pk in ids], rest))
        shards.append(Shard(name, sha, parquet.schema_arrow, groups))
    return shards


def pyarrow_floor(shards: list[Shard], target: Path, check: bool = False
                  ) -> tuple[float, float]:
    """(seconds, CPU seconds) to read every centre tile and write the export's files with
    pyarrow. The image column is built as the export builds it (each chunk of tiles read
    straight into one Arrow buffer, not pa.array's growing buffer), so the floor is no slower
    than it need be; here the chunks are read one after another on this one thread."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from annotations.exporting.arrow_columns import binary_from_files
    from annotations.exporting.features import IMAGE_TYPE, image_column
    from annotations.exporting.hf import IMAGE_COLUMNS
    from annotations.exporting.images import CHUNK
    from annotations.exporting.parquet import writer_options

    start, cpu = time.perf_counter(), time.process_time()
    written = []
    for number, shard in enumerate(shards):
        schema = shard.schema
        path = target.with_name(f"{target.stem}-{number}{target.suffix}")
        with pq.ParquetWriter(path, schema, **writer_options(schema, IMAGE_COLUMNS)) as out:
            for files, rest in shard.groups:
                image = pa.chunked_array([image_column(binary_from_files(files[i:i + CHUNK]))
                                          for i in range(0, len(files), CHUNK)], IMAGE_TYPE)
                table = pa.Table.from_arrays([image, *rest.columns], schema=schema)
                out.write_table(table, row_group_size=len(files))
        written.append(path)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    # Every shard stays until the end, as the export's do: removing each before writing the
    # next let the floor write into page-cache pages just freed, which on this VM cost 0.07 s
    # per 200 MB against 0.6 s for pages never touched before (the host backs them lazily).
    for path, shard in zip(written, shards, strict=True):
        if check:
            with open(path, "rb") as handle:
                sha = hashlib.file_digest(handle, "sha256").hexdigest()
            assert sha == shard.sha256, f"the floor's {shard.name} differs from the export's"
        path.unlink()
    return seconds, cpu


def floor_child(shards: list[Shard], workdir: Path) -> tuple[float, float]:
    """:func:`pyarrow_floor` in a fresh interpreter, as the export runs: (seconds, CPU)."""
    import pickle

    given = workdir / "floor-input.pickle"
    given.write_bytes(pickle.dumps(shards))
    _, out, _ = child([sys.executable, str(Path(__file__).resolve()), "--floor-child",
                       str(given), str(workdir / "floor.parquet")])
    given.unlink()
    result = json.loads(out)
    return result["seconds"], result["cpu"]


def measure(slug: str, workdir: Path, repeat: int) -> None:
    out = workdir / f"out-{slug}"
    shutil.rmtree(out, ignore_errors=True)
    first = export(slug, out)  # warms the page cache and the database for both sides
    n = first.result["rows"]
    shards = floor_input(out, first.result["files"])
    tiles = sum(os.path.getsize(f) for s in shards for files, _ in s.groups for f in files)
    size = sum((out / s.name).stat().st_size for s in shards)
    shutil.rmtree(out)
    pyarrow_floor(shards, workdir / "floor.parquet", check=True)
    print(f"{slug}: {n} patches, {tiles / 2**20:.0f} MiB of centre PNGs, "
          f"{size / 2**20:.0f} MiB of parquet in {len(shards)} shard(s); the floor's files "
          "have the export's sha256", flush=True)
    floors, runs, loads = [], [], []
    for _ in range(repeat):
        loads.append(load())
        floors.append(floor_child(shards, workdir))
        runs.append(export(slug, out))
        shutil.rmtree(out)
        assert runs[-1].result["files"] == first.result["files"], "exports differ"
    floor_s = statistics.median(f for f, _ in floors)
    floor_cpu = statistics.median(c for _, c in floors)
    export_cpu = statistics.median(r.cpu for r in runs)
    export_s = statistics.median(r.seconds for r in runs)
    wall_s = statistics.median(r.wall for r in runs)
    ratios = ", ".join(f"{f / r.seconds:.0%}" for (f, _), r in zip(floors, runs, strict=True))
    print(f"  pyarrow directly : {n / floor_s:8.0f} patches/s (read + write, median of {repeat}"
          f"), {floor_cpu:.2f} s CPU")
    print(f"  export_hf        : {n / export_s:8.0f} patches/s (the export itself; "
          f"{n / wall_s:.0f}/s with process start-up), median of {repeat}, {export_cpu:.2f} s "
          "CPU (all its threads)")
    print(f"  export / pyarrow = {floor_s / export_s:.0%} (goal >= 70%; each pair: {ratios}); "
          f"CPU pyarrow / export = {floor_cpu / export_cpu:.0%}")
    print(f"  peak RSS of the export process: {max(r.peak_mib for r in runs)} MiB")
    print(f"  load average at each pair: {', '.join(loads)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[4_000, 40_000])
    parser.add_argument("--repeat", type=int, nargs="+", default=[3, 1])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--floor-child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spider_web.settings")
    import django

    django.setup()
    if args.floor_child:  # the floor's own run (floor_child): input pickle, target
        import pickle

        shards = pickle.loads(args.floor_child[0].read_bytes())
        seconds, cpu = pyarrow_floor(shards, args.floor_child[1])
        print(json.dumps({"seconds": seconds, "cpu": cpu}))
        return
    subprocess.run([*MANAGE, "migrate", "-v", "0"], check=True, cwd=ROOT)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="spider-export-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"database: {os.environ.get('DATABASE_URL', 'sqlite (default)')}, "
          f"{os.cpu_count()} CPUs")
    slugs = [ensure_project(workdir / f"n{n}", n) for n in args.sizes]
    for i, slug in enumerate(slugs):
        measure(slug, workdir, args.repeat[min(i, len(args.repeat) - 1)])


if __name__ == "__main__":
    main()
