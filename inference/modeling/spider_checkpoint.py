"""Read a local snapshot of ``histai/SPIDER-<organ>-model`` into our head (+ backbone weights).

The published checkpoint's key names could not be read here (gated repo, no network), so the
assumed names live in ONE table below; fix it there once a real snapshot has been inspected.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .convert import (
    StateDict,
    WeightLoadError,
    read_state_dict,
    resolve_weight_files,
    sha256_files,
    strict_load,
)
from .heads import SpiderContextHead

_BACKBONE = "<backbone>"

# UNCONFIRMED: assumed key prefixes in the published model.safetensors -> our names.
# A bundled checkpoint is expected to hold Hibou-L under a backbone prefix (split off and
# returned for ``load_backbone_state_dict``) and a transformers-BERT head under another.
# The longest matching prefix wins; a key matching none is an error that names it.
SPIDER_KEY_PREFIXES: dict[str, str] = {
    "backbone.": _BACKBONE,
    "hibou.": _BACKBONE,
    "feature_extractor.": _BACKBONE,
    "model.backbone.": _BACKBONE,
    "head.bert.": "",
    "bert.": "",
    "head.": "",
    "model.head.": "",
    "projection.": "projection.",
    "proj.": "projection.",
    "classifier.": "classifier.",
    "embeddings.": "embeddings.",
    "encoder.": "encoder.",
}
# Parameters a transformers BertModel carries that the head never uses when fed embeddings.
IGNORED_HEAD_KEYS = ("embeddings.word_embeddings.weight", "embeddings.position_ids", "pooler.")


class ClassNameMismatchError(ValueError):
    """The checkpoint's classes differ from the project's, compared byte for byte."""


@dataclass
class SpiderHead:
    """A loaded SPIDER head plus what a model-version record and the backbone loader need."""

    head: SpiderContextHead
    class_names: list[str]  # the order of the head's outputs (the project's when reordered)
    checkpoint_class_names: list[str]
    permutation: list[int] | None  # project class i = checkpoint output permutation[i]
    backbone_state_dict: StateDict = field(repr=False)
    sha256: str
    config: dict[str, Any] = field(repr=False)


def load_spider_head(
    folder: str | Path, class_names: list[str], *, reorder: bool = True
) -> SpiderHead:
    """Load config.json + model.safetensors from a local snapshot folder.

    Class names must match the project's exactly (``Kaposi’s sarcoma`` with U+2019 is not
    ``Kaposi's sarcoma``). When only the order differs, the permutation is returned and, with
    ``reorder``, applied to the classifier so outputs follow ``class_names``.
    """
    folder = Path(folder)
    config = _read_config(folder / "config.json")
    ckpt_names = _id2label(config, folder / "config.json")
    permutation = match_class_names(ckpt_names, class_names)
    files = resolve_weight_files(folder)
    head_sd, backbone_sd = split_spider_state_dict(read_state_dict(files), source=str(folder))
    head = _build_head(head_sd, config, len(ckpt_names), source=str(folder))
    strict_load(head, head_sd, source=f"{folder} (head)")
    head.eval()
    if permutation is not None and reorder:
        head.reorder_classes(permutation)
    return SpiderHead(
        head=head,
        class_names=list(class_names) if reorder else ckpt_names,
        checkpoint_class_names=ckpt_names,
        permutation=permutation,
        backbone_state_dict=backbone_sd,
        sha256=sha256_files(files),
        config=config,
    )


def match_class_names(checkpoint: list[str], project: list[str]) -> list[int] | None:
    """None when identical; the permutation when only the order differs; else an error."""
    for label, names in (("checkpoint", checkpoint), ("project", project)):
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ClassNameMismatchError(f"duplicate class names in {label}: {_show(dupes)}")
    if checkpoint == project:
        return None
    missing = sorted(set(project) - set(checkpoint))
    extra = sorted(set(checkpoint) - set(project))
    if missing or extra:
        raise ClassNameMismatchError(
            "class names differ (compared byte for byte): "
            f"in project but not in model: {_show(missing)}; "
            f"in model but not in project: {_show(extra)}"
        )
    return [checkpoint.index(name) for name in project]


def _show(names: list[str]) -> str:
    """Names with their escaped form when non-ASCII, so look-alike apostrophes are visible."""
    return "[" + ", ".join(repr(n) if n.isascii() else f"{n!r} (= {n!a})" for n in names) + "]"


def split_spider_state_dict(state: StateDict, source: str) -> tuple[StateDict, StateDict]:
    """(head keys in our names, backbone keys with their prefix removed) via the table."""
    head: StateDict = {}
    backbone: StateDict = {}
    unknown: list[str] = []
    prefixes = sorted(SPIDER_KEY_PREFIXES, key=len, reverse=True)
    for key, value in state.items():
        prefix = next((p for p in prefixes if key.startswith(p)), None)
        if prefix is None:
            unknown.append(key)
            continue
        target, rest = SPIDER_KEY_PREFIXES[prefix], key[len(prefix) :]
        if target == _BACKBONE:
            backbone[rest] = value
        elif not (target + rest).startswith(IGNORED_HEAD_KEYS):
            head[target + rest] = value
    if unknown:
        raise WeightLoadError(
            f"{source}: key(s) match no prefix in SPIDER_KEY_PREFIXES: {', '.join(sorted(unknown))}"
        )
    return head, backbone


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: missing (a SPIDER snapshot needs config.json)") from None
    except ValueError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(config, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return config


def _id2label(config: dict[str, Any], path: Path) -> list[str]:
    raw = _lookup(config, "id2label")
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"{path}: no id2label mapping")
    try:
        ids = sorted(int(k) for k in raw)
    except ValueError as exc:
        raise ValueError(f"{path}: id2label keys must be integers ({exc})") from exc
    if ids != list(range(len(ids))):
        raise ValueError(f"{path}: id2label ids are not 0..{len(ids) - 1}: {ids}")
    return [str(raw[str(i)] if str(i) in raw else raw[i]) for i in ids]


def _lookup(config: dict[str, Any], key: str, default: Any = None) -> Any:
    """A key at top level or one level down (remote-code configs often nest the head's)."""
    if key in config:
        return config[key]
    for value in config.values():
        if isinstance(value, dict) and key in value:
            return value[key]
    return default


def _build_head(
    state: StateDict, config: dict[str, Any], num_classes: int, source: str
) -> SpiderContextHead:
    """Sizes come from the tensors (they cannot lie); dropouts and eps from config.json."""
    try:
        proj = state["projection.weight"]
        positions = state["embeddings.position_embeddings.weight"]
        intermediate = state["encoder.layer.0.intermediate.dense.weight"]
        classifier = state["classifier.weight"]
    except KeyError as exc:
        raise WeightLoadError(f"{source}: head weights lack {exc.args[0]!r}") from None
    if classifier.shape[0] != num_classes:
        raise ValueError(
            f"{source}: classifier has {classifier.shape[0]} outputs but id2label "
            f"has {num_classes} classes"
        )
    token_types = state.get("embeddings.token_type_embeddings.weight")
    layers = sum(1 for k in state if k.endswith(".attention.self.query.weight"))
    classifier_dropout = _lookup(config, "classifier_dropout")  # BERT configs often say null
    return SpiderContextHead(
        in_dim=proj.shape[1],
        num_classes=num_classes,
        hidden_size=proj.shape[0],
        num_positions=positions.shape[0],
        num_attention_heads=int(_lookup(config, "num_attention_heads", 1)),
        intermediate_size=intermediate.shape[0],
        num_layers=layers,
        hidden_dropout=float(_lookup(config, "hidden_dropout_prob", 0.5)),
        attention_dropout=float(_lookup(config, "attention_probs_dropout_prob", 0.3)),
        classifier_dropout=0.3 if classifier_dropout is None else float(classifier_dropout),
        layer_norm_eps=float(_lookup(config, "layer_norm_eps", 1e-12)),
        type_vocab_size=0 if token_types is None else token_types.shape[0],
    )


def load_head_state(head: torch.nn.Module, path: str | Path) -> str:
    """Strictly load a head saved by us (our key names); return the file's sha256."""
    files = resolve_weight_files(Path(path))
    strict_load(head, read_state_dict(files), source=str(path))
    return sha256_files(files)
