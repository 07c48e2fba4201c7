"""Every registered backbone builds (as a tiny variant) and maps images to (B, embed_dim);
the Hibou family matches an independent forward pass and DESIGN.md's published shape."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

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


# From DESIGN.md (section 2), written out here rather than imported from the code under test.
DESIGN_MEAN = (0.7068, 0.5755, 0.7220)
DESIGN_STD = (0.1950, 0.2316, 0.1816)


def randomised(name: str, **overrides: Any):
    """A backbone with every parameter random (LayerScale's 1e-5 init would hide the blocks)."""
    gen = torch.Generator().manual_seed(7)
    backbone = create_backbone(name, **overrides)
    with torch.no_grad():
        for p in backbone.module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    return backbone


def reference_forward(sd: dict[str, torch.Tensor], images: torch.Tensor, heads: int,
                      patch: int = 14) -> torch.Tensor:
    """DINOv2-with-registers ViT written with plain tensor ops from a timm state dict: patch
    embedding, position embedding on the patches only, [CLS, registers, patches], pre-norm
    blocks with LayerScale and a SwiGLU MLP (silu(x1) * x2), final norm, the CLS token."""
    b, dim = images.shape[0], sd["cls_token"].shape[-1]
    x = F.conv2d(images, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"],
                 stride=patch).flatten(2).transpose(1, 2) + sd["pos_embed"]
    x = torch.cat([sd["cls_token"].expand(b, -1, -1), sd["reg_token"].expand(b, -1, -1), x], 1)
    n, hd = x.shape[1], dim // heads
    i = 0
    while f"blocks.{i}.norm1.weight" in sd:
        w = {k[len(f"blocks.{i}.") :]: v for k, v in sd.items() if k.startswith(f"blocks.{i}.")}
        h = F.layer_norm(x, (dim,), w["norm1.weight"], w["norm1.bias"], eps=1e-6)
        q, k, v = (F.linear(h, w["attn.qkv.weight"], w["attn.qkv.bias"])
                   .reshape(b, n, 3, heads, hd).permute(2, 0, 3, 1, 4))
        attn = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(hd), dim=-1) @ v
        attn = F.linear(attn.transpose(1, 2).reshape(b, n, dim), w["attn.proj.weight"],
                        w["attn.proj.bias"])
        x = x + w["ls1.gamma"] * attn
        h = F.layer_norm(x, (dim,), w["norm2.weight"], w["norm2.bias"], eps=1e-6)
        x1, x2 = F.linear(h, w["mlp.fc1.weight"], w["mlp.fc1.bias"]).chunk(2, dim=-1)
        x = x + w["ls2.gamma"] * F.linear(F.silu(x1) * x2, w["mlp.fc2.weight"],
                                          w["mlp.fc2.bias"])
        i += 1
    return F.layer_norm(x, (dim,), sd["norm.weight"], sd["norm.bias"], eps=1e-6)[:, 0]


HIBOU_SMALL = [("hibou-l", {"embed_dim": 32, "depth": 2, "num_heads": 2}, 2),
               ("hibou-tiny", {}, 2)]


@pytest.mark.parametrize("name,overrides,heads", HIBOU_SMALL, ids=["hibou-l-small", "tiny"])
def test_hibou_matches_an_independent_forward(name: str, overrides: dict, heads: int) -> None:
    backbone = randomised(name, **overrides)
    images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        out = backbone(images)
        expected = reference_forward(backbone.module.state_dict(), images, heads)
        tokens = backbone.module.forward_features(images)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)
    # the output is the normed CLS token, ahead of 4 registers and 16 x 16 patches
    assert tokens.shape == (2, 1 + 4 + 256, backbone.config.embed_dim)
    torch.testing.assert_close(out, tokens[:, 0], rtol=0, atol=0)


def test_hibou_factory_equals_the_design_recipe() -> None:
    """DESIGN.md's VisionTransformer arguments, given explicitly (at toy width), load our
    factory's weights strictly and give the same embeddings."""
    from timm.layers import SwiGLUPacked
    from timm.models.vision_transformer import VisionTransformer

    dim, hidden = 32, (int(4 * 32 * 2 / 3) + 7) // 8 * 8  # DINOv2 SwiGLU sizing: 88
    ours = randomised("hibou-l", embed_dim=dim, depth=2, num_heads=2)
    recipe = VisionTransformer(img_size=224, patch_size=14, embed_dim=dim, depth=2, num_heads=2,
                               init_values=1e-5, mlp_ratio=2 * hidden / dim,
                               mlp_layer=SwiGLUPacked, act_layer=nn.SiLU, reg_tokens=4,
                               no_embed_class=True, num_classes=0).eval()
    recipe.load_state_dict(ours.module.state_dict(), strict=True)
    images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        torch.testing.assert_close(ours(images), recipe(images), rtol=0, atol=0)


def test_hibou_l_matches_published_shape() -> None:
    """Build on the meta device: full Hibou-L shapes without allocating 300M parameters."""
    with torch.device("meta"):
        backbone = create_backbone("hibou-l")
    module, sd = backbone.module, backbone.module.state_dict()
    assert backbone.config.embed_dim == 1024 == module.num_features
    assert (backbone.config.mean, backbone.config.std) == (DESIGN_MEAN, DESIGN_STD)
    assert (HIBOU_MEAN, HIBOU_STD) == (DESIGN_MEAN, DESIGN_STD)
    assert (backbone.config.input_size, backbone.config.interpolation) == (224, "bicubic")
    assert sd["patch_embed.proj.weight"].shape == (1024, 3, 14, 14)
    assert sd["blocks.0.mlp.fc1.weight"].shape == (5472, 1024)  # SwiGLU, two halves of 2736
    assert sd["blocks.0.mlp.fc2.weight"].shape == (1024, 2736)
    assert isinstance(module.blocks[0].mlp.act, nn.SiLU)
    assert sd["reg_token"].shape == (1, 4, 1024)
    assert sd["pos_embed"].shape == (1, 256, 1024)  # patches only: no class position
    assert sd["cls_token"].shape == (1, 1, 1024)
    assert sum(1 for k in sd if k.endswith("attn.qkv.weight")) == 24
    assert {block.attn.num_heads for block in module.blocks} == {16}
    assert "blocks.0.ls1.gamma" in sd and module.global_pool == "token"
    assert swiglu_mlp_ratio(1024) == 5472 / 1024


def test_color_texture_is_weight_free_and_reads_a_known_image() -> None:
    backbone = create_backbone("color-texture")
    assert backbone.module.state_dict() == {}
    assert backbone.config.embed_dim == 64
    mean = torch.tensor(DESIGN_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(DESIGN_STD).view(1, 3, 1, 1)
    colour = torch.tensor([0.8, 0.4, 0.6]).view(1, 3, 1, 1)
    flat = (colour.expand(1, 3, 224, 224) - mean) / std  # one colour, normalised as fed
    gen = torch.Generator().manual_seed(11)
    noisy = torch.randn(3, 3, 224, 224, generator=gen)
    with torch.inference_mode():
        out = backbone(torch.cat([flat, noisy]))
        alone = backbone(noisy[1:2])
        again = create_backbone("color-texture")(noisy)
    f = out[0]
    torch.testing.assert_close(f[:3], colour.flatten(), atol=1e-5, rtol=0)  # RGB means
    torch.testing.assert_close(f[3:6], torch.zeros(3), atol=1e-5, rtol=0)  # no spread
    torch.testing.assert_close(f[12], torch.tensor(0.4), atol=1e-5, rtol=0)  # max - min
    assert f[14] == 0 and f[15] == 0  # grey 0.6: neither glass nor dense
    for start in (16, 24, 32):  # three soft histograms, each a distribution
        torch.testing.assert_close(out[:, start : start + 8].sum(1), torch.ones(4), atol=1e-3,
                                   rtol=0)
    assert f[40:].abs().max() < 1e-3  # a flat image has no texture (float rounding only)
    assert out[1:, 40:].abs().min() > 3e-3  # noise has, in every texture statistic
    # each row depends on its own image only, and a fresh encoder gives the same numbers
    torch.testing.assert_close(alone[0], out[2], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(again, out[1:], rtol=0, atol=0)


def test_unknown_backbone_names_the_key() -> None:
    with pytest.raises(UnknownBackboneError, match="no-such-net"):
        create_backbone("no-such-net")
    with pytest.raises(UnknownBackboneError, match="not_a_timm_model"):
        create_backbone("timm:not_a_timm_model")
