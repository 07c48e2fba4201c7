"""Named tile backbones: a registry so a model version is recorded as a name plus weights hash.

Every backbone maps a normalised (B, 3, S, S) batch to a (B, embed_dim) embedding. The config
carries the preprocessing it expects, so the embedding pipeline never hard-codes Hibou numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from .color_texture import ColorTextureEncoder

HIBOU_MEAN = (0.7068, 0.5755, 0.7220)
HIBOU_STD = (0.1950, 0.2316, 0.1816)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

TIMM_PREFIX = "timm:"


class UnknownBackboneError(KeyError):
    """Raised for a backbone name that is not in the registry."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


@dataclass(frozen=True)
class BackboneConfig:
    """What a caller needs to feed the backbone and to record which one produced an embedding."""

    name: str
    embed_dim: int
    input_size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bicubic"


@dataclass
class Backbone:
    """An ``nn.Module`` plus its config and the sha256 of the weights it was loaded from."""

    module: nn.Module
    config: BackboneConfig
    weights_sha256: str | None = None
    _compiled: nn.Module | None = field(default=None, repr=False)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        embeddings: torch.Tensor = self.module(images)  # nn.Module calls return Any
        return embeddings

    def to(self, device: torch.device | str) -> Backbone:
        self.module.to(device)
        return self

    def eval(self) -> Backbone:
        self.module.eval()
        return self

    def compiled(self) -> nn.Module:
        """The module under ``torch.compile``, built once and reused (compiling is slow)."""
        if self._compiled is None:
            # An nn.Module compiles to an OptimizedModule (an nn.Module); the stubs say Callable.
            self._compiled = cast(nn.Module, torch.compile(self.module))
        return self._compiled


BackboneBuilder = Callable[..., tuple[nn.Module, BackboneConfig]]
_REGISTRY: dict[str, BackboneBuilder] = {}


def register_backbone(name: str) -> Callable[[BackboneBuilder], BackboneBuilder]:
    """Decorator: register ``builder(**overrides) -> (module, config)`` under ``name``."""

    def wrap(builder: BackboneBuilder) -> BackboneBuilder:
        if name in _REGISTRY:
            raise ValueError(f"backbone {name!r} is already registered")
        _REGISTRY[name] = builder
        return builder

    return wrap


def list_backbones() -> list[str]:
    """Registered names; any timm model is also reachable as ``timm:<name>``."""
    return sorted(_REGISTRY)


def create_backbone(name: str, weights: str | Path | None = None, **overrides: Any) -> Backbone:
    """Build backbone ``name`` in eval mode, loading local ``weights`` strictly when given.

    Without weights the module is randomly initialised (or weight-free for ``color-texture``),
    which is what tests and the demo use; real deployments pass a local file or HF snapshot.
    """
    if name.startswith(TIMM_PREFIX):
        module, config = _build_timm(name[len(TIMM_PREFIX) :], **overrides)
    else:
        try:
            builder = _REGISTRY[name]
        except KeyError:
            known = ", ".join(list_backbones())
            raise UnknownBackboneError(
                f"unknown backbone {name!r}; known: {known}, or timm:<model name>"
            ) from None
        module, config = builder(**overrides)
    sha = None
    if weights is not None:
        from .convert import load_backbone_weights  # local: convert imports this module's types

        sha = load_backbone_weights(module, weights)
    module.eval()
    return Backbone(module=module, config=config, weights_sha256=sha)


def swiglu_mlp_ratio(embed_dim: int) -> float:
    """DINOv2's SwiGLU sizing: hidden = 2/3 of 4*dim rounded up to 8; fc1 packs two halves.

    For 1024 this gives hidden 2736 and ratio 5472/1024, Hibou-L's published shape.
    """
    hidden = (int(4 * embed_dim * 2 / 3) + 7) // 8 * 8
    return 2 * hidden / embed_dim


def _build_hibou_vit(
    name: str,
    *,
    embed_dim: int,
    depth: int,
    num_heads: int,
    img_size: int = 224,
    patch_size: int = 14,
    reg_tokens: int = 4,
    mlp_ratio: float | None = None,
    **extra: Any,
) -> tuple[nn.Module, BackboneConfig]:
    from timm.layers import SwiGLUPacked
    from timm.models.vision_transformer import VisionTransformer

    module = VisionTransformer(
        img_size=img_size,
        patch_size=patch_size,
        embed_dim=embed_dim,
        depth=depth,
        num_heads=num_heads,
        init_values=1e-5,
        mlp_ratio=mlp_ratio if mlp_ratio is not None else swiglu_mlp_ratio(embed_dim),
        # timm annotates mlp_layer as a Module class; SwiGLUPacked is a partial it accepts.
        mlp_layer=SwiGLUPacked,  # type: ignore[arg-type]
        act_layer=nn.SiLU,
        reg_tokens=reg_tokens,
        no_embed_class=True,
        num_classes=0,
        **extra,
    )
    config = BackboneConfig(
        name=name, embed_dim=embed_dim, input_size=img_size, mean=HIBOU_MEAN, std=HIBOU_STD
    )
    return module, config


@register_backbone("hibou-l")
def _hibou_l(**overrides: Any) -> tuple[nn.Module, BackboneConfig]:
    """Hibou-L: DINOv2 ViT-L/14, 4 registers, SwiGLU (hidden 2736), LayerScale 1e-5."""
    params: dict[str, Any] = {"embed_dim": 1024, "depth": 24, "num_heads": 16}
    params.update(overrides)
    return _build_hibou_vit("hibou-l", **params)


@register_backbone("hibou-tiny")
def _hibou_tiny(**overrides: Any) -> tuple[nn.Module, BackboneConfig]:
    """Same family and key layout as Hibou-L at toy width, so tests exercise the real code path."""
    params: dict[str, Any] = {"embed_dim": 64, "depth": 2, "num_heads": 2}
    params.update(overrides)
    return _build_hibou_vit("hibou-tiny", **params)


@register_backbone("color-texture")
def _color_texture(**overrides: Any) -> tuple[nn.Module, BackboneConfig]:
    """Hand-crafted colour/texture statistics; NOT a foundation model (see ColorTextureEncoder)."""
    input_size = int(overrides.pop("input_size", 224))
    if overrides:
        raise TypeError(f"color-texture takes no overrides besides input_size: {sorted(overrides)}")
    config = BackboneConfig(
        name="color-texture",
        embed_dim=ColorTextureEncoder.EMBED_DIM,
        input_size=input_size,
        mean=HIBOU_MEAN,
        std=HIBOU_STD,
    )
    return ColorTextureEncoder(mean=config.mean, std=config.std), config


def _build_timm(model_name: str, **overrides: Any) -> tuple[nn.Module, BackboneConfig]:
    """Any timm architecture, never pretrained from the hub (no network here)."""
    import timm

    if not model_name:
        raise UnknownBackboneError("empty timm model name; use timm:<model name>")
    try:
        module = timm.create_model(model_name, pretrained=False, num_classes=0, **overrides)
    except RuntimeError as exc:  # timm raises RuntimeError('Unknown model ...')
        raise UnknownBackboneError(f"timm cannot build {model_name!r}: {exc}") from exc
    data_cfg = getattr(module, "pretrained_cfg", {}) or {}
    size = data_cfg.get("input_size", (3, 224, 224))[-1]
    config = BackboneConfig(
        name=f"{TIMM_PREFIX}{model_name}",
        embed_dim=int(cast(int, module.num_features)),  # an int attribute of timm models
        input_size=int(overrides.get("img_size", size)),
        mean=tuple(data_cfg.get("mean", IMAGENET_MEAN)),
        std=tuple(data_cfg.get("std", IMAGENET_STD)),
        interpolation=str(data_cfg.get("interpolation", "bicubic")),
    )
    return module, config
