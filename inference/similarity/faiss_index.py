"""The index itself, pure numpy + faiss (no Django): exact inner product on L2-normalised
vectors, stored as float16, keyed by patch id.

``IndexIDMap2`` over ``IndexScalarQuantizer(d, QT_fp16, METRIC_INNER_PRODUCT)``: half the
memory of float32 (2 KiB per 1024-d patch, 400 MB for a whole organ), scores exact to fp16
rounding, ids are the patches' own ids so no side table maps rows to patches, and
``remove_ids``/``add_with_ids`` update it in place.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

# faiss's SWIG classes (IndexIDMap2 over IndexScalarQuantizer); typed loosely on purpose.
FaissIndex = Any

KIND = "flat-fp16-ip"


def _faiss() -> Any:
    """faiss, imported on first use: processes that never query (imports, exports, the
    system checks of every command) do not map its ~30 MB."""
    import faiss

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
    return int(index.remove_ids(_faiss().IDSelectorBatch(wanted)))


def ids_of(index: FaissIndex) -> np.ndarray:
    return np.asarray(_faiss().vector_to_array(index.id_map), dtype=np.int64)


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
    if allowed is not None:
        params = faiss.SearchParameters(
            sel=faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64)))
    scores, ids = index.search(normalised(np.atleast_2d(queries)), k, params=params)
    return scores, ids


def to_bytes(index: FaissIndex) -> bytes:
    return bytes(_faiss().serialize_index(index).tobytes())


def from_bytes(data: bytes) -> FaissIndex:
    # deserialize_index already returns the concrete class; wrapping it again in
    # downcast_index would let the owning wrapper be collected and free the index.
    return _faiss().deserialize_index(np.frombuffer(data, dtype=np.uint8))
