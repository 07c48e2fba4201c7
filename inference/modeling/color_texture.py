"""A weight-free colour/texture descriptor so the demo and tests run in seconds on a CPU.

This is NOT a foundation model and learns nothing: it summarises each tile with fixed
statistics (RGB and haematoxylin/eosin colour, soft histograms, gradient and local-variance
texture at three scales, at half resolution). It separates tissue types that differ in stain
and texture, which is enough to exercise the whole predict/review/retrain loop, but it is no
substitute for Hibou-L.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

# Ruifrok & Johnston H&E-DAB stain vectors (rows: haematoxylin, eosin, DAB), as in scikit-image.
_RGB_FROM_HED = torch.tensor(
    [[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]], dtype=torch.float64
)
_HED_FROM_RGB = torch.linalg.inv(_RGB_FROM_HED / _RGB_FROM_HED.norm(dim=1, keepdim=True))

_HIST_BINS = 8
_SCALES = (1, 2, 4)


class ColorTextureEncoder(nn.Module):
    """(B, 3, H, W) normalised images -> (B, 64) float32 features; deterministic, no weights.

    Layout: 16 colour moments/fractions, 24 soft-histogram bins (H, E, grey), and 8 texture
    statistics at each of 3 scales.
    """

    EMBED_DIM = 16 + 3 * _HIST_BINS + 8 * len(_SCALES)

    mean: torch.Tensor  # the buffers registered in __init__
    std: torch.Tensor
    hed_from_rgb: torch.Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        # Non-persistent buffers: state_dict() stays empty, so nothing is mistaken for weights.
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("hed_from_rgb", _HED_FROM_RGB.float(), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # Half resolution (0.5 um/px -> 1 um/px at 20x): the statistics barely move and every
        # per-pixel step below costs a quarter.
        rgb = F.avg_pool2d(images.float() * self.std + self.mean, 2).clamp(0.0, 1.0)
        grey = rgb.mean(dim=1, keepdim=True)
        od = -torch.log10(rgb.clamp(min=1.0 / 255.0))  # optical density, 0..~2.4
        hed = torch.einsum("bchw,cd->bdhw", od, self.hed_from_rgb).clamp(min=0.0)
        sat = rgb.amax(dim=1, keepdim=True) - rgb.amin(dim=1, keepdim=True)
        colour = [
            _flat(rgb).mean(-1),
            _flat(rgb).std(-1),
            _flat(hed).mean(-1),
            _flat(hed).std(-1),
            _flat(sat).mean(-1),
            _flat(sat).std(-1),
            (_flat(grey) > 0.85).float().mean(-1),  # background / glass
            (_flat(grey) < 0.25).float().mean(-1),  # dense nuclei, pigment
        ]
        hists = [
            _soft_hist(hed[:, 0], 0.0, 1.2),
            _soft_hist(hed[:, 1], 0.0, 1.2),
            _soft_hist(grey[:, 0], 0.0, 1.0),
        ]
        maps = torch.cat([grey, hed[:, :2]], dim=1)  # grey, haematoxylin, eosin
        texture = []
        for scale in _SCALES:
            scaled = maps if scale == 1 else F.avg_pool2d(maps, scale)
            texture.append(_texture(scaled))
        return torch.cat(colour + hists + texture, dim=1)


def _texture(maps: torch.Tensor) -> torch.Tensor:
    """8 stats of (grey, H, E) maps: grey gradient mean/std, local std, |Laplacian|; H/E
    gradient and local std. Finite differences by slicing: far cheaper than conv2d on a CPU."""
    centre = maps[:, :, 1:-1, 1:-1]
    dx = (maps[:, :, 1:-1, 2:] - maps[:, :, 1:-1, :-2]) / 2
    dy = (maps[:, :, 2:, 1:-1] - maps[:, :, :-2, 1:-1]) / 2
    grad = _flat(torch.sqrt(dx * dx + dy * dy + 1e-12))
    lap = (
        maps[:, :1, 1:-1, 2:]
        + maps[:, :1, 1:-1, :-2]
        + maps[:, :1, 2:, 1:-1]
        + maps[:, :1, :-2, 1:-1]
        - 4 * centre[:, :1]
    )
    local_std = _flat(_local_std(maps)).mean(-1)
    return torch.cat(
        [
            grad[:, :1].mean(-1),
            grad[:, :1].std(-1),
            local_std[:, :1],
            _flat(lap.abs()).mean(-1),
            grad[:, 1:].mean(-1),
            local_std[:, 1:],
        ],
        dim=1,
    )


def _flat(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H*W)."""
    return x.flatten(start_dim=-2)


def _local_std(x: torch.Tensor) -> torch.Tensor:
    """Standard deviation in each 3x3 window (valid positions only), by summing shifted
    slices: several times faster on a CPU than a stride-1 avg_pool2d."""
    h, w = x.shape[-2] - 2, x.shape[-1] - 2
    total = torch.zeros_like(x[..., :h, :w])
    squares = torch.zeros_like(total)
    for dy in range(3):
        for dx in range(3):
            window = x[..., dy : dy + h, dx : dx + w]
            total += window
            squares += window * window
    mean = total / 9
    return (squares / 9 - mean * mean).clamp(min=0.0).sqrt()


def _soft_hist(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """(B, H, W) -> (B, bins) triangular-kernel histogram summing to 1.

    Each value splits its unit weight linearly between its two nearest bin centres, which is
    smooth in the pixel values (unlike hard bins) yet costs two scatter-adds.
    """
    pos = (x.flatten(start_dim=1).clamp(lo, hi) - lo) / (hi - lo) * (_HIST_BINS - 1)
    left = pos.floor().clamp(max=_HIST_BINS - 2)
    frac = pos - left
    left = left.long()
    hist = pos.new_zeros(pos.shape[0], _HIST_BINS)
    hist.scatter_add_(1, left, 1.0 - frac)
    hist.scatter_add_(1, left + 1, frac)
    return hist / pos.shape[1]
