"""Build a local snapshot folder shaped like histai/SPIDER-<organ>-model, for tests."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from inference.modeling import SpiderContextHead, create_backbone


def build_spider_snapshot(
    folder: Path, classes: list[str], extra: dict[str, torch.Tensor] | None = None
):
    """A config.json + model.safetensors as we assume the published repo looks."""
    head = SpiderContextHead(in_dim=64, num_classes=len(classes), type_vocab_size=2).eval()
    with torch.no_grad():
        for p in head.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    backbone = create_backbone("hibou-tiny")
    state = {
        f"head.bert.{k}": v
        for k, v in head.state_dict().items()
        if k.startswith(("embeddings.", "encoder."))
    }
    state["head.projection.weight"] = head.projection.weight
    state["head.projection.bias"] = head.projection.bias
    state["head.classifier.weight"] = head.classifier.weight
    state["head.classifier.bias"] = head.classifier.bias
    state["head.bert.embeddings.word_embeddings.weight"] = torch.zeros(10, 128)  # unused
    state.update({f"backbone.{k}": v for k, v in backbone.module.state_dict().items()})
    state.update(extra or {})
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    config = {
        "id2label": {str(i): n for i, n in enumerate(classes)},
        "hidden_size": 128,
        "num_attention_heads": 1,
        "hidden_dropout_prob": 0.5,
        "attention_probs_dropout_prob": 0.3,
    }
    (folder / "config.json").write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
    return head, backbone
