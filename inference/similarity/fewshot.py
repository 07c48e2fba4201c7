"""The field's few-shot and retrieval figures from embeddings, pure numpy (no Django).

Prototype classification: the mean of ``shots`` normalised embeddings per class, each query
given the class of its nearest prototype (cosine). Retrieval Recall@K: a query counts as
found when any of its K nearest database patches has its class.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from inference.modeling.scoring import metrics
from inference.similarity.faiss_index import normalised


def prototypes(vectors: np.ndarray, labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """(len(classes), D) unit-length class means of ``vectors`` (rows normalised first)."""
    unit = normalised(vectors)
    means = np.stack([unit[labels == c].mean(axis=0) for c in classes])
    return normalised(means)


def nearest(queries: np.ndarray, protos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row of the nearest prototype, its cosine) per query."""
    scores = normalised(queries) @ protos.T
    best = scores.argmax(axis=1)
    return best, scores[np.arange(len(best)), best]


def few_shot(train: np.ndarray, train_labels: np.ndarray, test: np.ndarray,
             test_labels: np.ndarray, shots: tuple[int, ...] = (1, 5, 10),
             episodes: int = 20, seed: int = 0) -> dict[str, Any]:
    """Prototype accuracy, balanced accuracy and weighted F1 on ``test`` with ``n`` random
    training patches per class, mean and standard deviation over ``episodes`` draws. Classes
    with fewer than ``n`` training patches use what they have; test patches of classes with
    none are left out (and counted)."""
    classes = np.unique(train_labels)
    keep = np.isin(test_labels, classes)
    test, test_labels = test[keep], test_labels[keep]
    position = {c: i for i, c in enumerate(classes.tolist())}
    truth = np.array([position[c] for c in test_labels.tolist()], dtype=np.int64)
    rng = np.random.default_rng(seed)
    by_class = {c: np.flatnonzero(train_labels == c) for c in classes.tolist()}
    out: dict[str, Any] = {"classes": len(classes), "test_patches": len(test),
                           "test_left_out": int((~keep).sum()), "episodes": episodes}
    if not len(test):
        return out
    for n in shots:
        runs: list[dict[str, float]] = []
        for _ in range(episodes):
            picked = np.concatenate([rng.choice(rows, size=min(n, len(rows)), replace=False)
                                     for rows in by_class.values()])
            protos = prototypes(train[picked], train_labels[picked], classes)
            predicted, _ = nearest(test, protos)
            m = metrics(truth, predicted, len(classes))
            runs.append({k: m[k] for k in ("accuracy", "balanced_accuracy", "weighted_f1")})
        out[f"{n}-shot"] = {k: {"mean": float(np.mean([r[k] for r in runs])),
                                "sd": float(np.std([r[k] for r in runs]))}
                            for k in runs[0]}
    return out


def recall_at_k(database: np.ndarray, database_labels: np.ndarray, queries: np.ndarray,
                query_labels: np.ndarray, ks: tuple[int, ...] = (1, 5, 10),
                batch: int = 512) -> dict[str, float]:
    """Recall@K of ``queries`` against ``database`` (cosine, exact)."""
    if not len(queries) or not len(database):
        return {}
    db = normalised(database)
    top = max(ks)
    hits = np.zeros((len(queries), top), dtype=bool)
    for start in range(0, len(queries), batch):
        q = normalised(queries[start:start + batch])
        scores = q @ db.T
        k = min(top, db.shape[0])
        best = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(scores, best, axis=1).argsort(axis=1)[:, ::-1]
        ranked = np.take_along_axis(best, order, axis=1)
        hits[start:start + len(q), :k] = (database_labels[ranked]
                                          == query_labels[start:start + len(q), None])
    return {f"recall@{k}": float(hits[:, :k].any(axis=1).mean()) for k in ks}
