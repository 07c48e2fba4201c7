"""load_spider_head on a snapshot folder built with BERT names under assumed prefixes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from inference.modeling import (
    ClassNameMismatchError,
    WeightLoadError,
    create_backbone,
    load_backbone_state_dict,
    load_spider_head,
)
from tests.modeling.spider_snapshot import build_spider_snapshot

CLASSES = ["Actinic keratosis", "Kaposi’s sarcoma", "Mercel cell carcinoma", "Wart"]


def _snapshot(folder: Path, extra: dict[str, torch.Tensor] | None = None):
    return build_spider_snapshot(folder, CLASSES, extra)


def test_loads_head_and_backbone(tmp_path: Path) -> None:
    head, backbone = _snapshot(tmp_path)
    loaded = load_spider_head(tmp_path, list(CLASSES))
    assert loaded.permutation is None and loaded.class_names == CLASSES
    assert len(loaded.sha256) == 64
    x = torch.randn(3, 25, 64)
    with torch.inference_mode():
        torch.testing.assert_close(loaded.head(x), head(x))
    fresh = create_backbone("hibou-tiny")
    load_backbone_state_dict(fresh.module, loaded.backbone_state_dict)
    images = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        torch.testing.assert_close(fresh(images), backbone(images))


def test_same_names_other_order_gives_permutation(tmp_path: Path) -> None:
    head, _ = _snapshot(tmp_path)
    project = [CLASSES[i] for i in (3, 1, 0, 2)]
    loaded = load_spider_head(tmp_path, project)
    assert loaded.permutation == [3, 1, 0, 2]
    x = torch.randn(2, 25, 64)
    with torch.inference_mode():
        torch.testing.assert_close(loaded.head(x), head(x)[:, [3, 1, 0, 2]])
    unordered = load_spider_head(tmp_path, project, reorder=False)
    assert unordered.class_names == CLASSES


def test_class_mismatch_lists_both_sides_byte_for_byte(tmp_path: Path) -> None:
    _snapshot(tmp_path)
    project = ["Actinic keratosis", "Kaposi's sarcoma", "Merkel cell carcinoma", "Wart"]
    with pytest.raises(ClassNameMismatchError) as info:
        load_spider_head(tmp_path, project)
    in_project, in_model = str(info.value).split(";")
    assert "in project but not in model" in in_project
    assert "Kaposi's sarcoma" in in_project and "Merkel cell carcinoma" in in_project
    assert "in model but not in project" in in_model
    assert "Kaposi’s sarcoma" in in_model and "Mercel cell carcinoma" in in_model
    assert "Kaposi\\u2019s sarcoma" in in_model  # the escaped form makes U+2019 visible
    assert "Actinic" not in str(info.value) and "Wart" not in str(info.value)


def test_unknown_key_is_named(tmp_path: Path) -> None:
    _snapshot(tmp_path, extra={"mystery.weight": torch.zeros(2)})
    with pytest.raises(WeightLoadError, match=r"mystery\.weight"):
        load_spider_head(tmp_path, list(CLASSES))


def test_missing_head_key_is_named(tmp_path: Path) -> None:
    _snapshot(tmp_path)
    from safetensors.torch import load_file

    state = load_file(str(tmp_path / "model.safetensors"))
    del state["head.bert.encoder.layer.0.output.LayerNorm.bias"]
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(WeightLoadError, match=r"encoder\.layer\.0\.output\.LayerNorm\.bias"):
        load_spider_head(tmp_path, list(CLASSES))


def test_missing_config_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        load_spider_head(tmp_path, list(CLASSES))
