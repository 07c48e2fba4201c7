"""Weights written in DINOv2, HF Dinov2 and timm layouts load strictly and reproduce outputs."""

from __future__ import annotations

import hashlib
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


def file_sha256(*files: Path) -> str:
    """sha256 of the files' bytes, concatenated in the order given (computed here, by hand)."""
    return hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()


def assert_loads_to_same_output(path: Path, source, *weights_files: Path) -> None:
    """Loads, reproduces the source model's embeddings, and records the weights files' hash."""
    _, images, expected = source
    fresh = create_backbone("hibou-tiny", weights=path)
    with torch.inference_mode():
        torch.testing.assert_close(fresh(images), expected)
    assert fresh.weights_sha256 == file_sha256(*(weights_files or (path,)))


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
    assert_loads_to_same_output(tmp_path, source, tmp_path / "model.safetensors")


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
    # The hash covers every shard's bytes, in shard order (not the index, not config files).
    assert_loads_to_same_output(tmp_path, source, *[tmp_path / name for name in sorted(shards)])
    # Same bytes in another folder, same hash: model versions are comparable across copies.
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in tmp_path.glob("model*"):
        (copy / path.name).write_bytes(path.read_bytes())
    assert load_backbone_weights(create_backbone("hibou-tiny").module, copy) == file_sha256(
        *[tmp_path / name for name in sorted(shards)])


def test_timm_native_and_pytorch_model_bin(tmp_path: Path, source) -> None:
    torch.save(source[0].module.state_dict(), tmp_path / "pytorch_model.bin")
    assert_loads_to_same_output(tmp_path, source, tmp_path / "pytorch_model.bin")


def test_matches_timms_own_dinov2_conversion(source) -> None:
    model = source[0].module
    original = to_dinov2(model.state_dict())
    ours = checkpoint_filter_fn(dict(original), model)
    theirs = timm_convert_dinov2(dict(original), model)
    assert ours.keys() == theirs.keys()
    for k in ours:
        torch.testing.assert_close(ours[k], theirs[k], rtol=0, atol=0)


# Exact conversion, checked tensor by tensor: a checkpoint in the source layout whose every
# tensor is known, and the timm tensors it must become, written out here rule by rule.
TINY_DIM, TINY_DEPTH, TINY_HIDDEN, TINY_PATCHES, TINY_REGS = 64, 2, 176, 256, 4


class Known:
    """Distinct, reproducible tensors by name, so a swapped or misplaced tensor shows."""

    def __init__(self) -> None:
        self.gen = torch.Generator().manual_seed(99)

    def __call__(self, *shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=self.gen)


def dinov2_checkpoint() -> tuple[StateDict, StateDict]:
    """(original DINOv2 checkpoint for hibou-tiny, the timm state dict it must load as)."""
    t, d, h = Known(), TINY_DIM, TINY_HIDDEN
    cls, pos, regs = t(1, 1, d), t(1, 1 + TINY_PATCHES, d), t(1, TINY_REGS, d)
    src: StateDict = {"cls_token": cls, "pos_embed": pos, "register_tokens": regs,
                      "mask_token": t(1, d), "patch_embed.proj.weight": t(d, 3, 14, 14),
                      "patch_embed.proj.bias": t(d), "norm.weight": t(d), "norm.bias": t(d)}
    want: StateDict = {"cls_token": cls + pos[:, :1], "pos_embed": pos[:, 1:],
                       "reg_token": regs, "patch_embed.proj.weight": src["patch_embed.proj.weight"],
                       "patch_embed.proj.bias": src["patch_embed.proj.bias"],
                       "norm.weight": src["norm.weight"], "norm.bias": src["norm.bias"]}
    for i in range(TINY_DEPTH):
        same = {"norm1.weight": t(d), "norm1.bias": t(d), "norm2.weight": t(d),
                "norm2.bias": t(d), "attn.qkv.weight": t(3 * d, d), "attn.qkv.bias": t(3 * d),
                "attn.proj.weight": t(d, d), "attn.proj.bias": t(d), "ls1.gamma": t(d),
                "ls2.gamma": t(d)}
        w12, b12, w3, b3 = t(2 * h, d), t(2 * h), t(d, h), t(d)
        src.update({f"blocks.{i}.{k}": v for k, v in same.items()})
        src.update({f"blocks.{i}.mlp.w12.weight": w12, f"blocks.{i}.mlp.w12.bias": b12,
                    f"blocks.{i}.mlp.w3.weight": w3, f"blocks.{i}.mlp.w3.bias": b3})
        want.update({f"blocks.{i}.{k}": v for k, v in same.items()})
        want.update({f"blocks.{i}.mlp.fc1.weight": w12, f"blocks.{i}.mlp.fc1.bias": b12,
                     f"blocks.{i}.mlp.fc2.weight": w3, f"blocks.{i}.mlp.fc2.bias": b3})
    return src, want


def hf_dinov2_checkpoint() -> tuple[StateDict, StateDict]:
    """(transformers Dinov2 checkpoint for hibou-tiny, the timm state dict it must load as)."""
    t, d, h = Known(), TINY_DIM, TINY_HIDDEN
    cls, pos, regs = t(1, 1, d), t(1, 1 + TINY_PATCHES, d), t(1, TINY_REGS, d)
    proj_w, proj_b, norm_w, norm_b = t(d, 3, 14, 14), t(d), t(d), t(d)
    src: StateDict = {
        "embeddings.cls_token": cls, "embeddings.position_embeddings": pos,
        "embeddings.register_tokens": regs, "embeddings.mask_token": t(1, d),
        "embeddings.patch_embeddings.projection.weight": proj_w,
        "embeddings.patch_embeddings.projection.bias": proj_b,
        "layernorm.weight": norm_w, "layernorm.bias": norm_b}
    want: StateDict = {"cls_token": cls + pos[:, :1], "pos_embed": pos[:, 1:],
                       "reg_token": regs, "patch_embed.proj.weight": proj_w,
                       "patch_embed.proj.bias": proj_b, "norm.weight": norm_w,
                       "norm.bias": norm_b}
    for i in range(TINY_DEPTH):
        hf, tm = f"encoder.layer.{i}.", f"blocks.{i}."
        q, k, v, qb, kb, vb = t(d, d), t(d, d), t(d, d), t(d), t(d), t(d)
        src.update({hf + "attention.attention.query.weight": q,
                    hf + "attention.attention.key.weight": k,
                    hf + "attention.attention.value.weight": v,
                    hf + "attention.attention.query.bias": qb,
                    hf + "attention.attention.key.bias": kb,
                    hf + "attention.attention.value.bias": vb})
        want.update({tm + "attn.qkv.weight": torch.cat([q, k, v]),
                     tm + "attn.qkv.bias": torch.cat([qb, kb, vb])})
        renames = {"norm1.weight": "norm1.weight", "norm1.bias": "norm1.bias",
                   "norm2.weight": "norm2.weight", "norm2.bias": "norm2.bias",
                   "attention.output.dense.weight": "attn.proj.weight",
                   "attention.output.dense.bias": "attn.proj.bias",
                   "layer_scale1.lambda1": "ls1.gamma", "layer_scale2.lambda1": "ls2.gamma",
                   "mlp.weights_in.weight": "mlp.fc1.weight", "mlp.weights_in.bias": "mlp.fc1.bias",
                   "mlp.weights_out.weight": "mlp.fc2.weight",
                   "mlp.weights_out.bias": "mlp.fc2.bias"}
        shapes = {"mlp.weights_in.weight": (2 * h, d), "mlp.weights_in.bias": (2 * h,),
                  "mlp.weights_out.weight": (d, h), "attention.output.dense.weight": (d, d)}
        for old, new in renames.items():
            tensor = t(*shapes.get(old, (d,)))
            src[hf + old], want[tm + new] = tensor, tensor
    return src, want


def assert_loaded_exactly(module: torch.nn.Module, want: StateDict) -> None:
    got = module.state_dict()
    assert sorted(got) == sorted(want)  # the expectation covers the whole model
    wrong = [k for k in want if not torch.equal(got[k], want[k])]
    assert not wrong, f"tensors not converted exactly: {wrong}"


@pytest.mark.parametrize("build", [dinov2_checkpoint, hf_dinov2_checkpoint],
                         ids=["dinov2", "hf-dinov2"])
def test_conversion_is_exact_tensor_by_tensor(tmp_path: Path, build) -> None:
    src, want = build()
    path = tmp_path / "weights.safetensors"
    save_file(src, str(path))
    backbone = create_backbone("hibou-tiny", weights=path)
    assert_loaded_exactly(backbone.module, want)
    assert backbone.weights_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_conversion_is_exact_under_a_wrapper_prefix() -> None:
    src, want = hf_dinov2_checkpoint()
    model = create_backbone("hibou-tiny").module
    converted = checkpoint_filter_fn({"dinov2." + k: v for k, v in src.items()}, model)
    assert sorted(converted) == sorted(want)
    assert all(torch.equal(converted[k], want[k]) for k in want)


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
