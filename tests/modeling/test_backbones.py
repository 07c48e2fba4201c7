"""Every registered backbone builds (as a tiny variant) and maps images to (B, embed_dim)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from inference.modeling import UnknownBackboneError, create_backbone, list_backbones
from inference.modeling.backbones import HIBOU_MEAN, HIBOU_STD, swiglu_mlp_ratio

# Tiny overrides of the SAME architecture family, per registered name.
TINY: dict[str, dict[str, Any]] = {
    "hibou-l": {"embed_dim": 32, "depth": 1, "num_heads": 2},
    "hibou-tiny": {},
    "color-texture": {},
    "timm:vit_tiny_patch16_224": {"depth": 1},
}


def test_every_registered_backbone_has_a_tiny_variant() -> None:
    assert set(list_backbones()) <= set(TINY)


@pytest.mark.parametrize("name", sorted(TINY))
def test_backbone_outputs_embed_dim(name: str) -> None:
    backbone = create_backbone(name, **TINY[name])
    size = backbone.config.input_size
    with torch.inference_mode():
        out = backbone(torch.randn(2, 3, size, size))
    assert out.shape == (2, backbone.config.embed_dim)
    assert torch.isfinite(out).all()
    assert not backbone.module.training


def test_hibou_l_matches_published_shape() -> None:
    """Build on the meta device: full Hibou-L shapes without allocating 300M parameters."""
    with torch.device("meta"):
        backbone = create_backbone("hibou-l")
    sd = backbone.module.state_dict()
    assert backbone.config.embed_dim == 1024
    assert (backbone.config.mean, backbone.config.std) == (HIBOU_MEAN, HIBOU_STD)
    assert sd["blocks.0.mlp.fc1.weight"].shape == (5472, 1024)
    assert sd["blocks.0.mlp.fc2.weight"].shape == (1024, 2736)
    assert sd["reg_token"].shape == (1, 4, 1024)
    assert sd["pos_embed"].shape == (1, 256, 1024)
    assert sum(1 for k in sd if k.endswith("attn.qkv.weight")) == 24
    assert swiglu_mlp_ratio(1024) == 5472 / 1024


def test_color_texture_is_deterministic_and_weight_free() -> None:
    backbone = create_backbone("color-texture")
    x = torch.randn(3, 3, 224, 224)
    assert backbone.module.state_dict() == {}
    torch.testing.assert_close(backbone(x), backbone(x), rtol=0, atol=0)
    assert backbone.config.embed_dim == 64


def test_unknown_backbone_names_the_key() -> None:
    with pytest.raises(UnknownBackboneError, match="no-such-net"):
        create_backbone("no-such-net")
    with pytest.raises(UnknownBackboneError, match="not_a_timm_model"):
        create_backbone("timm:not_a_timm_model")
