"""The index in Django's storage (MEDIA by default): written under a new name each time, so a
reader never sees half a file and a per-process cache keyed by the name is never stale."""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from annotations.models import Project
from inference.models import EmbeddingSpace
from inference.similarity import faiss_index
from inference.similarity.models import SimilarityIndex

_CACHE: OrderedDict[str, faiss_index.FaissIndex] = OrderedDict()
_CACHE_SIZE = 2  # indexes kept per process: a whole organ's is ~330 MB, 1M patches 2 GB
_lock = threading.Lock()


def save(project: Project, space: EmbeddingSpace, index: faiss_index.FaissIndex) -> str:
    name = f"similarity/{project.pk}/space-{space.pk}-{uuid.uuid4().hex[:12]}.faiss"
    return default_storage.save(name, ContentFile(faiss_index.to_bytes(index)))


def load(row: SimilarityIndex) -> faiss_index.FaissIndex:
    """The index ``row`` points at, for queries, read once per process. An exact index on a
    local file system is memory-mapped read-only, so the web server's workers share one copy
    of its codes in the page cache instead of holding one each (330 MB for a whole organ)."""
    with _lock:
        if row.file in _CACHE:
            _CACHE.move_to_end(row.file)
            return _CACHE[row.file]
    index = None
    if row.kind == faiss_index.KIND:
        try:
            index = faiss_index.read_mapped(default_storage.path(row.file))
        except NotImplementedError:  # a storage without local paths (S3): read the bytes
            index = None
    if index is None:
        index = load_copy(row)
    with _lock:
        _CACHE[row.file] = index
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return index


def load_copy(row: SimilarityIndex) -> faiss_index.FaissIndex:
    """A private, writable copy (what an index job updates; never the cached one)."""
    with default_storage.open(row.file, "rb") as handle:
        return faiss_index.from_bytes(handle.read())


def delete(name: str) -> None:
    with _lock:
        _CACHE.pop(name, None)
    if name and default_storage.exists(name):
        default_storage.delete(name)
