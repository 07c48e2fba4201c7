"""Embedded real-tissue datasets with planted label flips, for the active-learning bench.

The sample H&E region is cut into SPIDER-format folders by ``annotations.sample_data`` (the
demo's data: heuristic labels, 10% flipped, the flips listed) and its tiles embedded with the
weight-free colour/texture encoder, as the demo's worker would. The result is cached as one
``.npz`` per slide count, so a bench run at 5k patches embeds once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PATCHES_PER_SLIDE = 42  # measured: 153,683 patches on 3,637 slides (42.3)


@dataclass
class Embedded:
    """(N, 25) tile rows into ``tiles``; the last tile row is zeros (blank context)."""

    tiles: np.ndarray  # (T + 1, D) float16
    index: np.ndarray  # (N, 25) int64
    given: np.ndarray  # (N,) labels as imported (with the planted flips)
    truth: np.ndarray  # (N,) labels before planting
    slides: np.ndarray  # (N,) slide numbers
    test: np.ndarray  # (N,) bool, the test split
    classes: list[str]

    @property
    def blank(self) -> np.ndarray:
        return self.index == len(self.tiles) - 1

    def __len__(self) -> int:
        return len(self.given)


class GridView:
    """(N, 25, D) indexable view, as the worker's ``GridEmbeddings``."""

    def __init__(self, data: Embedded) -> None:
        self.tiles, self.index = data.tiles, data.index
        self.shape = (len(data.index), data.index.shape[1], data.tiles.shape[1])
        self.blank = data.blank

    def __getitem__(self, rows) -> np.ndarray:
        return self.tiles[self.index[rows]]


def load(slides: int, cache: Path) -> Embedded:
    path = cache / f"al-bench-{slides}.npz"
    if not path.exists():
        _build(slides, cache, path)
    z = np.load(path, allow_pickle=False)
    return Embedded(z["tiles"], z["index"], z["given"], z["truth"], z["slides"], z["test"],
                    [str(c) for c in z["classes"]])


def _build(slides: int, cache: Path, path: Path) -> None:
    from annotations.sample_data import build_spider_folder

    folder = cache / f"al-bench-spider-{slides}"
    encoder = _InMemoryEncoder()
    build_spider_folder(folder, slides=slides, write_tile=encoder.add)
    tiles = encoder.finish()
    records = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))
    planted = {p["image_name"]: p["true_class"]
               for p in json.loads((folder / "planted_errors.json").read_text())}
    classes = sorted({r["class"] for r in records} | set(planted.values()))
    row = encoder.rows
    blank = len(tiles) - 1
    index = np.full((len(records), 25), blank, dtype=np.int64)
    for i, r in enumerate(records):
        index[i, 12] = row[r["image_name"]]
        for key, name in r["context_info"].items():
            dr, dc = (int(x) for x in key.split("_"))
            index[i, dr * 5 + dc] = row[name]
    pos = {c: i for i, c in enumerate(classes)}
    given = np.array([pos[r["class"]] for r in records])
    truth = np.array([pos[planted.get(r["image_name"], r["class"])] for r in records])
    slide_ids = sorted({r["slide_id"] for r in records})
    slide_no = {s: i for i, s in enumerate(slide_ids)}
    np.savez(path, tiles=tiles, index=index, given=given, truth=truth,
             slides=np.array([slide_no[r["slide_id"]] for r in records]),
             test=np.array([r["split"] == "test" for r in records]), classes=np.array(classes))


class _InMemoryEncoder:
    """Embeds the tiles ``build_spider_folder`` cuts as they come, without writing PNGs.

    The worker decodes each PNG to the same uint8 pixels (PNG is lossless) and hands them to
    the colour/texture encoder raw, as here; at 160k patches (~290k tiles) this saves writing
    and decoding ~30 GB of PNGs.
    """

    BATCH = 128

    def __init__(self) -> None:
        from inference.modeling import create_backbone

        self.module = create_backbone("color-texture").module.eval()
        self.rows: dict[str, int] = {}
        self.pending: list[np.ndarray] = []
        self.done: list[np.ndarray] = []

    def add(self, name: str, tile: np.ndarray) -> None:
        self.rows[name] = len(self.rows)
        self.pending.append(tile)
        if len(self.pending) == self.BATCH:
            self._flush()

    def _flush(self) -> None:
        import torch

        if not self.pending:
            return
        batch = torch.from_numpy(np.stack(self.pending)).permute(0, 3, 1, 2).contiguous()
        with torch.inference_mode():
            self.done.append(self.module(batch).float().numpy().astype(np.float16))
        self.pending.clear()

    def finish(self) -> np.ndarray:
        """(tiles + 1, D) float16 in ``rows`` order; the last row (zeros) is the blank tile."""
        self._flush()
        return np.concatenate([*self.done, np.zeros((1, self.done[0].shape[1]), np.float16)])
