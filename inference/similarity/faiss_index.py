"""The index itself, pure numpy + faiss (no Django): exact inner product on L2-normalised
vectors, stored as float16, keyed by patch id.

``IndexIDMap2`` over ``IndexScalarQuantizer(d, QT_fp16, METRIC_INNER_PRODUCT)``: half the
memory of float32 (2 KiB per 1024-d patch, 400 MB for a whole organ), scores exact to fp16
rounding, ids are the patches' own ids so no side table maps rows to patches, and
``remove_ids``/``add_with_ids`` update it in place.

Past ``EXACT_LIMIT`` patches a flat scan per query costs more than a page may wait (~80 ms
at 1M on 2 cores), so :func:`ivf` builds an inverted-file index over the same fp16 codes
(``IndexIVFScalarQuantizer``, about sqrt(n) lists), whose lists scanned per query are
calibrated at build time (:func:`calibrate`) until Recall@10 against the exact scan reaches
0.99 on the project's own patches; ``bench/similarity_bench.py`` prints recall per nprobe.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

# faiss's SWIG classes (IndexIDMap2 over IndexScalarQuantizer); typed loosely on purpose.
FaissIndex = Any

KIND = "flat-fp16-ip"
KIND_IVF = "ivf-fp16-ip"
EXACT_LIMIT = 500_000  # patches; SPIDER's largest organ (skin, 160k) stays exact
NPROBE = 48  # lists a calibration starts from (see calibrate and the bench's recall table)
TRAIN_SAMPLE = 50_000  # vectors the IVF's k-means learns its lists from


def kind_for(size: int) -> str:
    return KIND if size <= EXACT_LIMIT else KIND_IVF


def kind_of(index: FaissIndex) -> str:
    return KIND_IVF if isinstance(index, _faiss().IndexIVF) else KIND


_threads_set = False


def _faiss() -> Any:
    """faiss, imported on first use: processes that never query (imports, exports, the
    system checks of every command) do not map its ~30 MB.

    One OpenMP thread: a single query is scanned by one thread anyway, and on a busy
    machine OpenMP's second thread waiting for a core made one query 100x slower (0.3 ms
    against 32 ms measured on the 2-core machine); requests run side by side in the web
    server's own threads."""
    global _threads_set
    import faiss

    if not _threads_set:
        faiss.omp_set_num_threads(1)
        _threads_set = True
    return faiss


def normalised(vectors: np.ndarray) -> np.ndarray:
    """float32 rows of unit length (a zero row stays zero: it matches nothing)."""
    out = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    np.divide(out, norms, out=out, where=norms > 0)
    return out


def empty(dim: int) -> FaissIndex:
    faiss = _faiss()
    flat = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16,
                                      faiss.METRIC_INNER_PRODUCT)
    return faiss.IndexIDMap2(flat)


def ivf(dim: int, size: int, sample: np.ndarray) -> FaissIndex:
    """An empty IVF index for about ``size`` vectors, its lists learnt from ``sample``;
    patch ids are kept in a hash table so ``reconstruct`` and ``remove_ids`` work by id."""
    faiss = _faiss()
    # ~sqrt(n) lists (1,000 at 1M), each learnt from >= 39 sample points as k-means wants.
    lists = int(max(1, min(4096, round(size ** 0.5), len(sample) // 39)))
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFScalarQuantizer(quantizer, dim, lists, faiss.ScalarQuantizer.QT_fp16,
                                          faiss.METRIC_INNER_PRODUCT)
    index.cp.niter = 10
    index.train(normalised(sample))
    index.own_fields = True
    quantizer.this.disown()  # the index owns it now
    index.set_direct_map_type(faiss.DirectMap.Hashtable)
    index.nprobe = NPROBE
    return index


def calibrate(index: FaissIndex, queries: np.ndarray, target: float = 0.99,
              k: int = 10) -> tuple[int, float]:
    """Set an IVF index's nprobe to the smallest (from NPROBE, doubling) whose Recall@k
    against the exact scan reaches ``target`` on ``queries``; returns (nprobe, recall).

    Scanning every list is the exact scan of the same fp16 codes, so the ground truth costs
    no second index. How many lists real embeddings need is a property of the data, not of
    the code: measured here, at build time, on the project's own patches."""
    lists = index.nlist
    index.nprobe = lists
    _, truth = search(index, queries, k)
    nprobe, recall = NPROBE, 0.0
    while True:
        index.nprobe = min(nprobe, lists)
        _, found = search(index, queries, k)
        recall = float(np.mean([len(set(t) & set(f)) / k for t, f in zip(truth, found,
                                                                         strict=True)]))
        if recall >= target or index.nprobe == lists:
            return index.nprobe, recall
        nprobe *= 2


def build(dim: int, batches: Iterable[tuple[np.ndarray, np.ndarray]]) -> FaissIndex:
    """An index of ``(ids, vectors)`` batches (vectors are normalised here)."""
    index = empty(dim)
    for ids, vectors in batches:
        add(index, ids, vectors)
    return index


def add(index: FaissIndex, ids: np.ndarray, vectors: np.ndarray) -> None:
    if len(ids):
        index.add_with_ids(normalised(vectors), np.ascontiguousarray(ids, dtype=np.int64))


def remove(index: FaissIndex, ids: Iterable[int]) -> int:
    wanted = np.fromiter(ids, dtype=np.int64)
    if not len(wanted):
        return 0
    faiss = _faiss()
    # An IVF's hash-table direct map removes only through an IDSelectorArray.
    selector = (faiss.IDSelectorArray(len(wanted), faiss.swig_ptr(wanted))
                if isinstance(index, faiss.IndexIVF) else faiss.IDSelectorBatch(wanted))
    return int(index.remove_ids(selector))


def ids_of(index: FaissIndex) -> np.ndarray:
    faiss = _faiss()
    if not isinstance(index, faiss.IndexIVF):
        return np.asarray(faiss.vector_to_array(index.id_map), dtype=np.int64)
    lists = index.invlists
    parts = [faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
             for i in range(index.nlist) if lists.list_size(i)]
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)


def vectors_of(index: FaissIndex, ids: Iterable[int]) -> np.ndarray:
    """The stored (fp16-rounded, normalised) vectors of ``ids``; KeyError for an unknown id."""
    wanted = list(ids)
    out = np.zeros((len(wanted), index.d), dtype=np.float32)
    for row, pid in enumerate(wanted):
        try:
            out[row] = index.reconstruct(int(pid))
        except RuntimeError as exc:
            raise KeyError(pid) from exc
    return out


def search(index: FaissIndex, queries: np.ndarray, k: int,
           allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(scores, ids) of the ``k`` best per query, best first; ids are -1 past the end.
    ``allowed`` restricts the search to those ids (faiss skips the others while scanning)."""
    k = max(1, min(k, index.ntotal)) if index.ntotal else 1
    params = None
    faiss = _faiss()
    selector = (None if allowed is None
                else faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64)))
    if isinstance(index, faiss.IndexIVF):
        params = faiss.SearchParametersIVF(nprobe=index.nprobe)
        if selector is not None:
            params.sel = selector
    elif selector is not None:
        params = faiss.SearchParameters(sel=selector)
    scores, ids = index.search(normalised(np.atleast_2d(queries)), k, params=params)
    return scores, ids


def to_bytes(index: FaissIndex) -> bytes:
    return bytes(_faiss().serialize_index(index).tobytes())


def read_mapped(path: str) -> FaissIndex:
    """An exact index file memory-mapped read-only (its codes stay in the page cache)."""
    faiss = _faiss()
    return faiss.read_index(path, faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)


def from_bytes(data: bytes) -> FaissIndex:
    # deserialize_index already returns the concrete class; wrapping it again in
    # downcast_index would let the owning wrapper be collected and free the index.
    return _faiss().deserialize_index(np.frombuffer(data, dtype=np.uint8))
