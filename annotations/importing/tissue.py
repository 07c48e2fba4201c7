"""Where the tissue is on a whole slide: Otsu on saturation over a low-resolution map.

H&E tissue is coloured and glass is near white or grey, so saturation separates them far
better than brightness (which pale fat and dark debris both confuse). The map is read in
blocks at a pyramid level near 8 map pixels per 224 px tile, so memory stays bounded by the
map (64 bytes per grid cell), never by the slide's pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from openslide import OpenSlide

CELL = 8  # map pixels per grid cell along each side
MIN_SATURATION = 20  # 0..255; below this a pixel is glass even if Otsu says otherwise
BAND_PIXELS = 1024  # side of one block read from the pyramid, in level pixels (4 MiB RGBA)


@dataclass(frozen=True)
class TissueMap:
    """Per-cell tissue fraction of a ``rows`` x ``cols`` grid, and the mask's pixel count."""

    fractions: np.ndarray  # float32, shape (rows, cols), 0..1
    threshold: int
    tissue_pixels: int  # map pixels above the threshold
    map_pixel_um: float  # side of one map pixel in microns

    @property
    def tissue_mm2(self) -> float:
        return self.tissue_pixels * (self.map_pixel_um / 1000.0) ** 2


def otsu_threshold(values: np.ndarray) -> int:
    """The 0..255 threshold that maximises the between-class variance of ``values``."""
    histogram = np.bincount(values.ravel(), minlength=256).astype(np.float64)
    total = histogram.sum()
    if total == 0:
        return 255
    levels = np.arange(256, dtype=np.float64)
    weight_low = np.cumsum(histogram)
    weight_high = total - weight_low
    mean_low = np.cumsum(histogram * levels)
    mean_all = mean_low[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mean_all * weight_low - total * mean_low) ** 2 / (weight_low * weight_high)
    between[~np.isfinite(between)] = -1
    return int(np.argmax(between))


def flatten_rgba(region: Image.Image) -> Image.Image:
    """RGB with transparent pixels (outside the scanned area) shown as white glass."""
    if region.mode != "RGBA":
        return region.convert("RGB")
    if region.getchannel("A").getextrema() == (255, 255):  # opaque: nothing to composite
        return region.convert("RGB")
    background = Image.new("RGB", region.size, (255, 255, 255))
    background.paste(region, mask=region.getchannel("A"))
    return background


def saturation_map(slide: OpenSlide, tile_px: int, cols: int, rows: int) -> np.ndarray:
    """Saturation (uint8) of the grid area at ``CELL`` pixels per cell, read band by band."""
    level = slide.get_best_level_for_downsample(tile_px / CELL)
    downsample = slide.level_downsamples[level]
    cell_at_level = tile_px / downsample
    block = max(1, int(BAND_PIXELS // cell_at_level))  # cells per block side
    out = np.empty((rows * CELL, cols * CELL), dtype=np.uint8)
    for r0 in range(0, rows, block):
        r1 = min(rows, r0 + block)
        for c0 in range(0, cols, block):
            c1 = min(cols, c0 + block)
            size = (max(1, round((c1 - c0) * cell_at_level)),
                    max(1, round((r1 - r0) * cell_at_level)))
            region = slide.read_region((c0 * tile_px, r0 * tile_px), level, size)
            rgb = flatten_rgba(region).resize(((c1 - c0) * CELL, (r1 - r0) * CELL),
                                              Image.Resampling.BOX)
            out[r0 * CELL:r1 * CELL, c0 * CELL:c1 * CELL] = np.asarray(rgb.convert("HSV"))[..., 1]
    return out


def tissue_map(slide: OpenSlide, tile_px: int, cols: int, rows: int, mpp: float) -> TissueMap:
    saturation = saturation_map(slide, tile_px, cols, rows)
    threshold = max(otsu_threshold(saturation), MIN_SATURATION)
    mask = saturation > threshold
    fractions = mask.reshape(rows, CELL, cols, CELL).mean(axis=(1, 3), dtype=np.float32)
    return TissueMap(fractions, threshold, int(mask.sum()), tile_px * mpp / CELL)
