"""The similarity index at SPIDER-skin size (160k) and at 1M patches, dim 1024.

Why: "more like this" answers while a pathologist waits (goal: query p95 <= 50 ms at 1M on
2 cores), and an index job rebuilds a project's index after a new embedding space. The
product's index is an exact inner-product scan of fp16 codes up to EXACT_LIMIT patches and
an IVF over the same codes past it (inference/similarity/faiss_index.py); this prints, per
size: build time, single-query p50/p95 (k=10, a patch of the index as the query, as "more
like this" asks), and for the IVF its Recall@10 against the exact scan at several nprobe.

Vectors: ``clustered`` (unit vectors around 2,400 centres, cosine ~0.8 within a cluster,
like embeddings of tissue classes and their variants) or ``random`` (structureless unit
gaussians, the worst case for any inverted file: no neighbour is much nearer than another).

Usage: .venv/bin/python bench/similarity_bench.py [--sizes 160000,1000000] [--dim 1024]
       [--data clustered,random] [--queries 100] [--recall-queries 100] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from inference.similarity import faiss_index  # pure numpy + faiss, no Django

CHUNK = 50_000
CENTRES = 2_400  # --centres
NOISE = 0.5  # --noise: per-dimension noise relative to a centre; cosine ~1/(1+NOISE^2)


def chunks(kind: str, size: int, dim: int, centres_n: int = CENTRES, noise_scale: float = NOISE,
           seed: int = 0):
    """(ids, float32 vectors) in CHUNK rows at a time, deterministic."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((centres_n, dim), dtype=np.float32)
    for start in range(0, size, CHUNK):
        n = min(CHUNK, size - start)
        noise = rng.standard_normal((n, dim), dtype=np.float32)
        if kind == "clustered":
            noise *= noise_scale
            noise += centres[rng.integers(0, centres_n, n)]
        yield np.arange(start, start + n, dtype=np.int64), noise


def latencies(index, queries: np.ndarray, k: int = 10) -> tuple[float, float, np.ndarray]:
    """(p50 ms, p95 ms, ids) of one query at a time."""
    times, found = [], []
    for q in queries:
        t = time.perf_counter()
        _, ids = faiss_index.search(index, q[None], k)
        times.append(time.perf_counter() - t)
        found.append(ids[0])
    ms = np.array(times) * 1e3
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95)), np.array(found)


def recall_at_10(exact: np.ndarray, approx: np.ndarray) -> float:
    return float(np.mean([len(set(e) & set(a)) / len(e) for e, a in zip(exact, approx,
                                                                        strict=True)]))


def run(kind: str, size: int, dim: int, n_queries: int, n_recall: int,
        centres_n: int = CENTRES, noise_scale: float = NOISE) -> dict:
    rng = np.random.default_rng(1)
    wanted = set(rng.choice(size, size=max(n_queries, n_recall), replace=False).tolist())
    sample_at = set(rng.choice(size, size=min(size, faiss_index.TRAIN_SAMPLE),
                               replace=False).tolist())
    out: dict = {"data": kind if kind == "random" else
                 f"clustered ({centres_n} centres, noise {noise_scale})", "size": size, "dim": dim}
    index = faiss_index.empty(dim)
    queries, sample = [], []
    build = 0.0
    for ids, vectors in chunks(kind, size, dim, centres_n, noise_scale):
        t = time.perf_counter()
        faiss_index.add(index, ids, vectors)
        build += time.perf_counter() - t
        rows = [i for i, pid in enumerate(ids.tolist()) if pid in wanted]
        queries.extend(faiss_index.normalised(vectors[rows]))
        sample.extend(vectors[[i for i, pid in enumerate(ids.tolist()) if pid in sample_at]])
    queries_arr = np.array(queries)
    out["exact_build_s"] = round(build, 1)
    big = size > faiss_index.EXACT_LIMIT
    exact_queries = queries_arr[: (min(n_queries, 40) if big else n_queries)]
    p50, p95, _ = latencies(index, exact_queries)
    out.update(exact_p50_ms=round(p50, 1), exact_p95_ms=round(p95, 1),
               exact_queries=len(exact_queries))
    print(json.dumps(out), flush=True)
    if not big:
        return out
    truth_q = queries_arr[:n_recall]
    _, truth = faiss_index.search(index, truth_q, 10)  # exact top 10 (one call, all queries)
    del index
    t = time.perf_counter()
    ivf = faiss_index.ivf(dim, size, np.array(sample))
    train = time.perf_counter() - t
    add = 0.0
    for ids, vectors in chunks(kind, size, dim, centres_n, noise_scale):
        t = time.perf_counter()
        faiss_index.add(ivf, ids, vectors)
        add += time.perf_counter() - t
    out.update(ivf_lists=ivf.nlist, ivf_train_s=round(train, 1), ivf_add_s=round(add, 1),
               ivf_build_s=round(train + add, 1))
    out["ivf"] = []
    for nprobe in (16, 32, 48, 64, 128):
        ivf.nprobe = nprobe
        p50, p95, _ = latencies(ivf, queries_arr[:n_queries])
        _, approx = faiss_index.search(ivf, truth_q, 10)
        out["ivf"].append({"nprobe": nprobe, "p50_ms": round(p50, 1), "p95_ms": round(p95, 1),
                           "recall@10": round(recall_at_10(truth, approx), 4)})
        print(json.dumps({"data": kind, "size": size, **out["ivf"][-1]}), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="160000,1000000")
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--data", default="clustered,random")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--recall-queries", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1,
                        help="faiss OpenMP threads (the product uses 1: see faiss_index)")
    parser.add_argument("--exact-limit", type=int, default=faiss_index.EXACT_LIMIT,
                        help="sizes above it also build the IVF (the product's limit)")
    parser.add_argument("--centres", type=int, default=CENTRES)
    parser.add_argument("--noise", type=float, default=NOISE)
    args = parser.parse_args()
    faiss_index.EXACT_LIMIT = args.exact_limit
    faiss_index._faiss().omp_set_num_threads(args.threads)
    results = [run(kind, int(size), args.dim, args.queries, args.recall_queries,
                   args.centres, args.noise)
               for size in args.sizes.split(",") for kind in args.data.split(",")]
    print("\n| data | patches | build s | exact p50 ms | exact p95 ms | IVF build s | "
          "nprobe | IVF p95 ms | Recall@10 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        for row in r.get("ivf") or [None]:
            ivf = (f"{r['ivf_build_s']} | {row['nprobe']} | {row['p95_ms']} | "
                   f"{row['recall@10']}") if row else "– | – | – | –"
            print(f"| {r['data']} | {r['size']:,} | {r['exact_build_s']} | {r['exact_p50_ms']}"
                  f" | {r['exact_p95_ms']} | {ivf} |")


if __name__ == "__main__":
    main()
