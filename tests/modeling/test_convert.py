"""Weights written in DINOv2, HF Dinov2 and timm layouts load strictly and reproduce outputs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from timm.models.vision_transformer import _convert_dinov2 as timm_convert_dinov2

from inference.modeling import WeightLoadError, create_backbone, load_backbone_weights
from inference.modeling.convert import checkpoint_filter_fn

StateDict = dict[str, torch.Tensor]


@pytest.fixture(scope="module")
def source():
    """A seeded hibou-tiny with every parameter randomised (LayerScale 1e-5 would hide bugs)."""
    gen = torch.Generator().manual_seed(1234)
    backbone = create_backbone("hibou-tiny")
    with torch.no_grad():
        for p in backbone.module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    images = torch.randn(2, 3, 224, 224, generator=gen)
    with torch.inference_mode():
        expected = backbone(images)
    return backbone, images, expected


def to_dinov2(sd: StateDict) -> StateDict:
    """Reverse of the DINOv2 -> timm rules: re-embed CLS position, registers, w12/w3."""
    pos_cls = torch.randn(1, 1, sd["pos_embed"].shape[-1])
    out: StateDict = {
        "mask_token": torch.randn(1, sd["cls_token"].shape[-1]),
        "register_tokens": sd["reg_token"].clone(),
        "cls_token": sd["cls_token"] - pos_cls,
        "pos_embed": torch.cat([pos_cls, sd["pos_embed"]], dim=1),
    }
    for k, v in sd.items():
        if k in ("reg_token", "cls_token", "pos_embed"):
            continue
        k = re.sub(r"\.mlp\.fc1\.", ".mlp.w12.", k)
        k = re.sub(r"\.mlp\.fc2\.", ".mlp.w3.", k)
        out[k] = v.clone()
    return out


def to_hf_dinov2(sd: StateDict, prefix: str = "") -> StateDict:
    """Original DINOv2 names -> transformers Dinov2 names (qkv split into query/key/value)."""
    top = {
        "cls_token": "embeddings.cls_token",
        "mask_token": "embeddings.mask_token",
        "register_tokens": "embeddings.register_tokens",
        "pos_embed": "embeddings.position_embeddings",
    }
    block = {
        "attn.proj.": "attention.output.dense.",
        "ls1.gamma": "layer_scale1.lambda1",
        "ls2.gamma": "layer_scale2.lambda1",
        "mlp.w12.": "mlp.weights_in.",
        "mlp.w3.": "mlp.weights_out.",
        "norm1.": "norm1.",
        "norm2.": "norm2.",
    }
    out: StateDict = {}
    for k, v in to_dinov2(sd).items():
        if k in top:
            out[top[k]] = v
        elif k.startswith("patch_embed.proj."):
            out[k.replace("patch_embed.proj.", "embeddings.patch_embeddings.projection.")] = v
        elif k.startswith("norm."):
            out[k.replace("norm.", "layernorm.")] = v
        else:
            layer, rest = re.match(r"blocks\.(\d+)\.(.+)", k).groups()
            base = f"encoder.layer.{layer}."
            if rest.startswith("attn.qkv."):
                param = rest.rsplit(".", 1)[1]
                for name, part in zip(("query", "key", "value"), v.chunk(3), strict=True):
                    out[f"{base}attention.attention.{name}.{param}"] = part.clone()
                continue
            old = next(o for o in block if rest.startswith(o))
            out[base + block[old] + rest[len(old) :]] = v
    return {prefix + k: v for k, v in out.items()}


def assert_loads_to_same_output(path: Path, source) -> None:
    _, images, expected = source
    fresh = create_backbone("hibou-tiny", weights=path)
    with torch.inference_mode():
        torch.testing.assert_close(fresh(images), expected)
    assert re.fullmatch(r"[0-9a-f]{64}", fresh.weights_sha256)


def test_dinov2_layout_pth(tmp_path: Path, source) -> None:
    path = tmp_path / "hibou.pth"
    torch.save(to_dinov2(source[0].module.state_dict()), path)
    assert_loads_to_same_output(path, source)


def test_dinov2_layout_safetensors(tmp_path: Path, source) -> None:
    path = tmp_path / "hibou.safetensors"
    save_file(to_dinov2(source[0].module.state_dict()), str(path))
    assert_loads_to_same_output(path, source)


def test_nested_training_checkpoint(tmp_path: Path, source) -> None:
    path = tmp_path / "ckpt.pth"
    torch.save({"model": to_dinov2(source[0].module.state_dict()), "epoch": 3}, path)
    assert_loads_to_same_output(path, source)


@pytest.mark.parametrize("prefix", ["", "dinov2.", "model.", "backbone."])
def test_hf_dinov2_snapshot_folder(tmp_path: Path, source, prefix: str) -> None:
    sd = to_hf_dinov2(source[0].module.state_dict(), prefix)
    save_file(sd, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text("{}")
    assert_loads_to_same_output(tmp_path, source)


def test_hf_sharded_snapshot(tmp_path: Path, source) -> None:
    sd = to_hf_dinov2(source[0].module.state_dict())
    keys = sorted(sd)
    shards = {
        "model-00001-of-00002.safetensors": keys[::2],
        "model-00002-of-00002.safetensors": keys[1::2],
    }
    weight_map = {}
    for name, part in shards.items():
        save_file({k: sd[k] for k in part}, str(tmp_path / name))
        weight_map.update({k: name for k in part})
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    assert_loads_to_same_output(tmp_path, source)
    # Same bytes, same hash: model versions are comparable.
    assert load_backbone_weights(
        create_backbone("hibou-tiny").module, tmp_path
    ) == load_backbone_weights(create_backbone("hibou-tiny").module, tmp_path)


def test_timm_native_and_pytorch_model_bin(tmp_path: Path, source) -> None:
    torch.save(source[0].module.state_dict(), tmp_path / "pytorch_model.bin")
    assert_loads_to_same_output(tmp_path, source)


def test_matches_timms_own_dinov2_conversion(source) -> None:
    model = source[0].module
    original = to_dinov2(model.state_dict())
    ours = checkpoint_filter_fn(dict(original), model)
    theirs = timm_convert_dinov2(dict(original), model)
    assert ours.keys() == theirs.keys()
    for k in ours:
        torch.testing.assert_close(ours[k], theirs[k], rtol=0, atol=0)


def _mutations():
    yield "missing", lambda sd: sd.pop("blocks.1.attn.proj.bias"), "blocks.1.attn.proj.bias"
    yield (
        "extra",
        lambda sd: sd.update({"blocks.0.extra.weight": torch.zeros(3)}),
        "blocks.0.extra.weight",
    )
    yield "shape", lambda sd: sd.update({"norm.weight": torch.zeros(7)}), "norm.weight"


@pytest.mark.parametrize("kind,mutate,key", list(_mutations()), ids=["missing", "extra", "shape"])
def test_strict_load_names_the_bad_key(tmp_path: Path, source, kind, mutate, key) -> None:
    sd = dict(source[0].module.state_dict())
    mutate(sd)
    path = tmp_path / "bad.safetensors"
    save_file(sd, str(path))
    with pytest.raises(WeightLoadError, match=re.escape(key)) as info:
        create_backbone("hibou-tiny", weights=path)
    assert str(path) in str(info.value)
    if kind == "shape":
        assert "(7,)" in str(info.value) and "(64,)" in str(info.value)


def test_hf_missing_query_is_named(tmp_path: Path, source) -> None:
    sd = to_hf_dinov2(source[0].module.state_dict())
    del sd["encoder.layer.0.attention.attention.key.weight"]
    save_file(sd, str(tmp_path / "model.safetensors"))
    with pytest.raises(WeightLoadError, match=re.escape("layer.0.attention.attention.key.weight")):
        create_backbone("hibou-tiny", weights=tmp_path)


def test_unreadable_and_absent_files_are_named(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightLoadError, match=r"junk\.pth"):
        create_backbone("hibou-tiny", weights=junk)
    with pytest.raises(WeightLoadError, match=r"model\.safetensors"):
        create_backbone("hibou-tiny", weights=tmp_path)
