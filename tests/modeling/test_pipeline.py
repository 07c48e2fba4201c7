"""embed_tiles: one embedding per item, in order, with fixed batch shapes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from inference.modeling import TileReadError, create_backbone, embed_tiles
from inference.modeling.pipeline import normalise, read_tile


@pytest.fixture
def tiles(tmp_path: Path) -> list[tuple[str, Path]]:
    rng = np.random.default_rng(0)
    items = []
    for i in range(10):
        size = (224, 224) if i != 3 else (100, 80)  # one off-size tile gets resized
        pixels = rng.integers(0, 256, size=(*size[::-1], 3), dtype=np.uint8)
        path = tmp_path / f"tile_{i}.png"
        Image.fromarray(pixels).save(path)
        items.append((f"id-{i}", path))
    return items


class ShapeSpy(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(x.shape))
        return self.inner(x)


@pytest.mark.parametrize("workers,chunk_batches", [(0, 64), (2, 1)])
def test_one_embedding_per_item_in_order(tiles, workers: int, chunk_batches: int) -> None:
    backbone = create_backbone("color-texture")
    spy = ShapeSpy(backbone.module)
    backbone.module = spy
    batches = list(
        embed_tiles(
            backbone,
            iter(tiles),
            batch_size=4,
            num_workers=workers,
            device="cpu",
            chunk_batches=chunk_batches,
        )
    )
    ids = [i for batch_ids, _ in batches for i in batch_ids]
    assert ids == [tile_id for tile_id, _ in tiles]
    assert [len(b) for b, _ in batches] == [4, 4, 2]
    assert set(spy.shapes) == {(4, 3, 224, 224)}  # the ragged tail was padded
    emb = np.concatenate([e for _, e in batches])
    assert emb.shape == (10, 64) and emb.dtype == np.float16
    # Padding does not leak into real rows: same as embedding each tile alone.
    cfg = backbone.config
    alone = torch.stack([read_tile(p, 224) for _, p in tiles])
    with torch.inference_mode():
        expected = spy.inner(normalise(alone, cfg)).numpy().astype(np.float16)
    np.testing.assert_allclose(emb.astype(np.float32), expected.astype(np.float32), atol=2e-3)


def test_vit_backbone_through_pipeline(tiles) -> None:
    backbone = create_backbone("hibou-tiny")
    out = list(embed_tiles(backbone, tiles[:3], batch_size=2, num_workers=0, device="cpu"))
    assert [e.shape for _, e in out] == [(2, 64), (1, 64)]


def test_corrupt_tile_names_its_path(tmp_path: Path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    with pytest.raises(TileReadError, match=r"broken\.png"):
        list(embed_tiles(create_backbone("color-texture"), [("x", bad)], num_workers=0))


def test_empty_input_yields_nothing() -> None:
    assert list(embed_tiles(create_backbone("color-texture"), [], num_workers=0)) == []
