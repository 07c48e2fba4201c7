"""Strict loading of local backbone weights in DINOv2, Hugging Face Dinov2 or timm layout.

A silent partial load would give plausible-looking but meaningless embeddings, so every
missing, unexpected or mis-shaped key is an error that names the key. Files are read with
``weights_only=True`` (no pickled code) and hashed so a model version records what it ran.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import nn

StateDict = dict[str, torch.Tensor]

_HF_ANCHOR = "embeddings.patch_embeddings.projection.weight"
_TIMM_ANCHOR = "patch_embed.proj.weight"
# Single-file and sharded names in a local Hugging Face snapshot, in order of preference.
_SNAPSHOT_FILES = ("model.safetensors", "pytorch_model.bin")
_WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


class WeightLoadError(RuntimeError):
    """Weights cannot be read or do not fit the model; the message names the keys or file."""


def load_backbone_weights(module: nn.Module, path: str | Path) -> str:
    """Load a local weights file or HF snapshot folder into ``module`` strictly; return sha256.

    The hash covers the bytes of every file read (shards in index order), so two model
    versions with identical weights files get the same hash.
    """
    files = resolve_weight_files(Path(path))
    state = read_state_dict(files)
    load_backbone_state_dict(module, state, source=str(path))
    return sha256_files(files)


def load_backbone_state_dict(
    module: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "state dict"
) -> None:
    """Convert ``state_dict`` to timm layout and load it strictly (used for bundled checkpoints)."""
    converted = checkpoint_filter_fn(dict(state_dict), module)
    strict_load(module, converted, source=source)


def resolve_weight_files(path: Path) -> list[Path]:
    """The file(s) to read: ``path`` itself, or the (possibly sharded) weights in a snapshot."""
    if path.is_file():
        if not path.name.endswith(_WEIGHT_SUFFIXES):
            raise WeightLoadError(f"{path}: not a weights file (expected {_WEIGHT_SUFFIXES})")
        return [path]
    if not path.is_dir():
        raise WeightLoadError(f"{path}: no such weights file or folder")
    for name in _SNAPSHOT_FILES:
        if (path / name).is_file():
            return [path / name]
        index = path / f"{name}.index.json"
        if index.is_file():
            return _shards_from_index(index)
    raise WeightLoadError(
        f"{path}: no {' or '.join(_SNAPSHOT_FILES)} (or their .index.json) in this folder"
    )


def _shards_from_index(index: Path) -> list[Path]:
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
    except (OSError, ValueError, KeyError) as exc:
        raise WeightLoadError(f"{index}: unreadable shard index ({exc})") from exc
    shards = [index.parent / name for name in sorted(set(weight_map.values()))]
    missing = [str(s) for s in shards if not s.is_file()]
    if missing:
        raise WeightLoadError(f"{index}: shard file(s) missing: {', '.join(missing)}")
    return shards


def read_state_dict(files: Iterable[Path]) -> StateDict:
    """Merge tensors from ``.safetensors`` or ``torch.load(weights_only=True)`` files."""
    merged: StateDict = {}
    for file in files:
        part = _read_one(file)
        clash = sorted(set(part) & set(merged))
        if clash:
            raise WeightLoadError(f"{file}: key(s) also in another shard: {', '.join(clash[:5])}")
        merged.update(part)
    return merged


def _read_one(file: Path) -> StateDict:
    try:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(file), device="cpu")
        obj = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, pickle with code, truncated download...
        raise WeightLoadError(f"{file}: cannot read weights ({type(exc).__name__}: {exc})") from exc
    return _unwrap(obj, file)


def _unwrap(obj: object, file: Path) -> StateDict:
    """Training checkpoints nest the weights under 'model', 'state_dict' or 'teacher'."""
    while isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        inner = next((obj[k] for k in ("model", "state_dict", "teacher") if k in obj), None)
        if inner is None:
            raise WeightLoadError(f"{file}: no tensors found (top-level keys: {list(obj)[:10]})")
        obj = inner
    if not isinstance(obj, Mapping):
        raise WeightLoadError(f"{file}: expected a state dict, got {type(obj).__name__}")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def sha256_files(files: Iterable[Path]) -> str:
    digest = hashlib.sha256()
    for file in files:
        with file.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def checkpoint_filter_fn(state_dict: StateDict, model: nn.Module) -> StateDict:
    """Recognise the layout (after stripping one leading prefix) and convert to timm names.

    The prefix (``dinov2.``, ``model.``, ``backbone.``, ...) is whatever precedes the patch
    embedding key, so wrappers from HF task models, Lightning or DDP all work.

    Keys outside the detected prefix are passed through unchanged, so the strict load reports
    them as unexpected rather than dropping them.
    """
    prefix, anchor = _detect_prefix(state_dict)
    inside = {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}
    outside = {k: v for k, v in state_dict.items() if not k.startswith(prefix)}
    if anchor == _HF_ANCHOR:
        inside = _convert_dinov2(_convert_hf_dinov2(inside), model)
    elif "mask_token" in inside or any(".mlp.w12." in k for k in inside):
        inside = _convert_dinov2(inside, model)
    return {**outside, **inside}


def _detect_prefix(state_dict: Mapping[str, torch.Tensor]) -> tuple[str, str]:
    for anchor in (_HF_ANCHOR, _TIMM_ANCHOR):
        hits = [k[: -len(anchor)] for k in state_dict if k.endswith(anchor)]
        hits = [p for p in hits if p == "" or p.endswith(".")]
        if len(hits) > 1:
            raise WeightLoadError(f"several ViT backbones in one checkpoint, prefixes: {hits}")
        if hits:
            return hits[0], anchor
    raise WeightLoadError(
        f"no ViT patch embedding ('{_TIMM_ANCHOR}' or '{_HF_ANCHOR}') among "
        f"{len(state_dict)} keys; first keys: {sorted(state_dict)[:5]}"
    )


def _convert_dinov2(state_dict: StateDict, model: nn.Module) -> StateDict:
    """Original DINOv2 layout -> timm, the same rules as timm's ``_convert_dinov2``.

    Drop ``mask_token``; ``register_tokens`` -> ``reg_token``; for a ``no_embed_class`` model
    fold the CLS position into ``cls_token`` and drop it from ``pos_embed``; ``w12/w3`` ->
    ``fc1/fc2``. Unlike timm's, this does not mutate its input and folds the CLS position by
    shape, so a DINOv2 checkpoint without registers also fits a ``no_embed_class`` model.
    """
    out = {k: v for k, v in state_dict.items() if k != "mask_token"}
    if "register_tokens" in out:
        out["reg_token"] = out.pop("register_tokens")
    target = getattr(model, "pos_embed", None)
    pos = out.get("pos_embed")
    if (
        getattr(model, "no_embed_class", False)
        and isinstance(target, torch.Tensor)
        and pos is not None
        and "cls_token" in out
        and pos.shape[1] == target.shape[1] + 1
    ):
        out["cls_token"] = out["cls_token"] + pos[:, :1]
        out["pos_embed"] = pos[:, 1:]
    renamed: StateDict = {}
    for key, value in out.items():
        key = re.sub(r"^(blocks\.\d+\.mlp\.)w12\.", r"\1fc1.", key)
        key = re.sub(r"^(blocks\.\d+\.mlp\.)w3\.", r"\1fc2.", key)
        renamed[key] = value
    return renamed


# Hugging Face Dinov2 name -> original DINOv2 name (per block, after ``encoder.layer.N.``).
_HF_BLOCK_RENAMES = {
    "norm1.": "norm1.",
    "norm2.": "norm2.",
    "attention.output.dense.": "attn.proj.",
    "layer_scale1.lambda1": "ls1.gamma",
    "layer_scale2.lambda1": "ls2.gamma",
    "mlp.weights_in.": "mlp.w12.",
    "mlp.weights_out.": "mlp.w3.",
    "mlp.fc1.": "mlp.fc1.",
    "mlp.fc2.": "mlp.fc2.",
}
_HF_TOP_RENAMES = {
    "embeddings.cls_token": "cls_token",
    "embeddings.mask_token": "mask_token",
    "embeddings.register_tokens": "register_tokens",
    "embeddings.position_embeddings": "pos_embed",
    "embeddings.patch_embeddings.projection.": "patch_embed.proj.",
    "layernorm.": "norm.",
}
_HF_QKV = re.compile(r"^encoder\.layer\.(\d+)\.attention\.attention\.(query|key|value)\.(\w+)$")
_HF_BLOCK = re.compile(r"^encoder\.layer\.(\d+)\.(.+)$")


def _convert_hf_dinov2(state_dict: StateDict) -> StateDict:
    """transformers Dinov2 naming -> original DINOv2 naming (q/k/v concatenated into qkv).

    Unknown keys keep their names so the strict load reports them instead of losing them.
    """
    out: StateDict = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for key, value in state_dict.items():
        if m := _HF_QKV.match(key):
            qkv.setdefault((m[1], m[3]), {})[m[2]] = value
            continue
        out[_rename_hf_key(key)] = value
    for (layer, param), parts in qkv.items():
        absent = [p for p in ("query", "key", "value") if p not in parts]
        if absent:
            names = [f"encoder.layer.{layer}.attention.attention.{p}.{param}" for p in absent]
            raise WeightLoadError(f"missing key(s) needed for qkv: {', '.join(names)}")
        out[f"blocks.{layer}.attn.qkv.{param}"] = torch.cat(
            [parts["query"], parts["key"], parts["value"]], dim=0
        )
    return out


def _rename_hf_key(key: str) -> str:
    for old, new in _HF_TOP_RENAMES.items():
        if key.startswith(old):
            return new + key[len(old) :]
    if m := _HF_BLOCK.match(key):
        for old, new in _HF_BLOCK_RENAMES.items():
            if m[2].startswith(old):
                return f"blocks.{m[1]}.{new}{m[2][len(old) :]}"
    return key


def strict_load(module: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """``load_state_dict`` that first lists every missing, unexpected and mis-shaped key."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    shapes = sorted(
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and state_dict[k].shape != v.shape
    )
    problems = []
    if missing:
        problems.append(f"missing keys: {', '.join(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {', '.join(unexpected)}")
    if shapes:
        problems.append(f"shape mismatch: {'; '.join(shapes)}")
    if problems:
        raise WeightLoadError(
            f"{source} does not fit {type(module).__name__}: " + " | ".join(problems)
        )
    module.load_state_dict(state_dict, strict=True)
