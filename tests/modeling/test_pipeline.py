"""embed_tiles: one embedding per item, in order, with fixed batch shapes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from inference.modeling import TileReadError, create_backbone, embed_tiles
from inference.modeling.pipeline import normalise, plan_decoding, read_tile


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


@pytest.mark.parametrize("workers,chunk_batches,decoder",
                         [(0, 64, "threads"), (2, 1, "threads"), (2, 1, "processes")])
def test_one_embedding_per_item_in_order(tiles, workers: int, chunk_batches: int,
                                         decoder: str) -> None:
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
            decoder=decoder,
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


def test_a_fifo_or_a_link_in_a_tiles_place_is_refused_not_waited_on(tiles, tmp_path: Path
                                                                      ) -> None:
    """A FIFO named where a linked tile was would block the worker's open until something
    wrote to it; a symbolic link could point at any file. Both name their path."""
    from tests.fifos import fifo_in_place

    with (fifo_in_place(tmp_path / "fifo.png") as released,
          pytest.raises(TileReadError, match=r"fifo\.png: .*not a regular file")):
        read_tile(tmp_path / "fifo.png", 224)
    assert not released, "reading the tile blocked on the FIFO"
    (tmp_path / "link.png").symlink_to(tiles[0][1])
    with pytest.raises(TileReadError, match=r"link\.png: .*symbolic links"):
        read_tile(tmp_path / "link.png", 224)
    (tmp_path / "via").symlink_to(tiles[0][1].parent)  # a link on the way, not at the end
    with pytest.raises(TileReadError, match=r"via/tile_0\.png: .*reached through a symbolic"):
        read_tile(tmp_path / "via" / tiles[0][1].name, 224)


def test_empty_input_yields_nothing() -> None:
    assert list(embed_tiles(create_backbone("color-texture"), [], num_workers=0)) == []


def test_raw_pixels_embed_like_normalised_ones(tiles) -> None:
    """The colour/texture encoder takes the uint8 batch straight from the decoders; its
    features match feeding it the normalised batch, as any other backbone is fed."""
    backbone = create_backbone("color-texture")
    assert backbone.module.accepts_uint8
    emb = np.concatenate([e for _, e in embed_tiles(backbone, tiles, batch_size=4,
                                                    num_workers=1, device="cpu")])
    alone = torch.stack([read_tile(p, 224) for _, p in tiles])
    with torch.inference_mode():
        expected = backbone(normalise(alone, backbone.config)).numpy()
    np.testing.assert_allclose(emb.astype(np.float32), expected, atol=2e-3, rtol=2e-3)


def test_cpu_cores_are_split_between_decoders_and_encoder(monkeypatch, tiles) -> None:
    """On a CPU the decoders and torch's threads share the cores this process may use (not
    the host's), and embedding gives the process its own thread count back afterwards."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(6)))
    plan = plan_decoding(torch.device("cpu"))
    assert (plan.decoder, plan.decoders, plan.torch_threads) == ("threads", 3, 3)
    assert plan_decoding(torch.device("cpu"), decoders=1).torch_threads == 5
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the operator's cap, e.g. one per worker
    assert plan_decoding(torch.device("cpu")) == plan_decoding(torch.device("cpu"), 1)
    assert plan_decoding(torch.device("cpu")).torch_threads == 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0})
    assert plan_decoding(torch.device("cpu")).decoders == 0  # one core: decode inline
    before = torch.get_num_threads()
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(before + 3)))
    seen = []
    backbone = create_backbone("color-texture")
    spy = ShapeSpy(backbone.module)
    spy.forward = lambda x: (seen.append(torch.get_num_threads()), spy.inner(x))[1]
    backbone.module = spy
    list(embed_tiles(backbone, tiles, batch_size=4, device="cpu"))
    assert seen and set(seen) == {before + 3 - (before + 3) // 2}
    assert torch.get_num_threads() == before
