"""Embedding spaces and model versions: create, store heads, register from files, activate.

Head weights are saved as safetensors through Django's storage, content-addressed by their
sha256, with the constructor arguments in ``ModelVersion.head_config`` so any worker can
rebuild the head. Backbone weights stay where the operator put them (1.2 GB for Hibou-L);
only their path and sha256 are recorded.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from annotations.models import LabelClass, Project
from inference.modeling import (
    create_backbone,
    head_config,
    head_from_config,
    load_spider_head,
)
from inference.modeling.convert import strict_load
from inference.models import EmbeddingSpace, HeadKind, ModelVersion
from inference.queue_scores import activate_version


class RegistrationError(ValueError):
    """Files or names given to register a model version do not fit the project."""


def project_class_names(project: Project) -> list[str]:
    """The project's class names in class-index order: the order every head predicts in."""
    return list(LabelClass.objects.filter(project=project).order_by("index")
                .values_list("name", flat=True))


def get_space(backbone: str, weights: str | Path | None = None) -> EmbeddingSpace:
    """The space for ``backbone`` with ``weights``, building the backbone once to check both.

    Loading is strict (a missing or mis-shaped key is an error naming it), so a space is only
    ever recorded for weights that really load into the architecture.
    """
    built = create_backbone(backbone, weights)
    sha = built.weights_sha256 or ""
    space, _ = EmbeddingSpace.objects.get_or_create(
        backbone=backbone, weights_sha256=sha,
        defaults={"weights_path": str(Path(weights).resolve()) if weights else "",
                  "embed_dim": built.config.embed_dim},
    )
    return space


def save_head(head: nn.Module) -> tuple[str, str, dict[str, Any]]:
    """Store ``head``'s weights; returns (storage name, sha256, config to rebuild it)."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}
    data = save_safetensors(tensors)
    sha = hashlib.sha256(data).hexdigest()
    name = f"models/heads/{sha}.safetensors"
    if not default_storage.exists(name):
        default_storage.save(name, ContentFile(data))
    return name, sha, head_config(head)


def load_head(version: ModelVersion) -> nn.Module:
    """Rebuild and strictly load a version's head, checking the stored bytes' sha256."""
    with default_storage.open(version.head_file, "rb") as handle:
        data = handle.read()
    if hashlib.sha256(data).hexdigest() != version.head_sha256:
        raise RegistrationError(
            f"{version.head_file}: head weights changed on disk since model version "
            f"{version.name!r} was saved (sha256 mismatch)"
        )
    head = head_from_config(version.head_config)
    strict_load(head, load_safetensors(data), source=version.head_file)
    return head.eval()


def create_version(
    project: Project,
    *,
    name: str,
    space: EmbeddingSpace,
    head: nn.Module,
    class_names: list[str],
    source: str,
    source_detail: str = "",
    training: dict | None = None,
    metrics: dict | None = None,
    activate: bool = False,
    user=None,
) -> ModelVersion:
    """Save a head as a new version of ``project``; its classes must be the project's."""
    expected = project_class_names(project)
    if class_names != expected:
        raise RegistrationError(
            f"head classes {class_names!r} are not the project's classes {expected!r}"
        )
    if ModelVersion.objects.filter(project=project, name=name).exists():
        raise RegistrationError(f"project {project.slug!r} already has a model named {name!r}")
    head_file, head_sha, config = save_head(head)
    with transaction.atomic():
        version = ModelVersion.objects.create(
            project=project, name=name, space=space, head_kind=config["kind"],
            head_file=head_file, head_sha256=head_sha, head_config=config,
            class_names=class_names, source=source, source_detail=source_detail,
            training=training or {}, metrics=metrics or {}, created_by=user,
        )
        if activate or not ModelVersion.objects.filter(project=project, is_active=True).exists():
            activate_version(version)
    return version


def register_model(
    project: Project,
    *,
    name: str,
    backbone: str,
    backbone_weights: str | Path | None = None,
    spider_model: str | Path | None = None,
    head_weights: str | Path | None = None,
    head_kind: str = HeadKind.CONTEXT,
    activate: bool = False,
    user=None,
) -> ModelVersion:
    """Register a version from local files: a SPIDER snapshot folder or our own head file.

    A SPIDER snapshot that bundles the backbone supplies its weights unless
    ``backbone_weights`` is given; they are saved once under ``models/backbones/``.
    """
    classes = project_class_names(project)
    if not classes:
        raise RegistrationError(f"project {project.slug!r} has no classes yet; import first")
    if (spider_model is None) == (head_weights is None):
        raise RegistrationError("give exactly one of a SPIDER model folder or a head file")
    if spider_model is not None:
        loaded = load_spider_head(spider_model, classes)
        head: nn.Module = loaded.head
        detail = f"{spider_model} (sha256 {loaded.sha256})"
        if backbone_weights is None and loaded.backbone_state_dict:
            backbone_weights = _save_bundled_backbone(loaded.backbone_state_dict)
    else:
        assert head_weights is not None  # exactly one of the two, checked above
        head = _read_head_file(Path(head_weights), head_kind, backbone, len(classes))
        detail = str(head_weights)
    space = get_space(backbone, backbone_weights)
    if getattr(head, "in_dim", space.embed_dim) != space.embed_dim:
        raise RegistrationError(
            f"the head expects {head.in_dim}-d embeddings but {space} gives {space.embed_dim}"
        )
    return create_version(project, name=name, space=space, head=head, class_names=classes,
                          source=ModelVersion.Source.REGISTERED, source_detail=detail,
                          activate=activate, user=user)


def _read_head_file(path: Path, kind: str, backbone: str, num_classes: int) -> nn.Module:
    if not path.is_file():
        raise RegistrationError(f"{path}: no such head weights file")
    state = load_safetensors(path.read_bytes()) if path.suffix == ".safetensors" else (
        torch.load(path, map_location="cpu", weights_only=True))
    in_dim = create_backbone(backbone).config.embed_dim
    head = head_from_config({"kind": kind, "in_dim": in_dim, "num_classes": num_classes})
    strict_load(head, state, source=str(path))
    return head.eval()


def _save_bundled_backbone(state: dict[str, torch.Tensor]) -> str:
    """Write the backbone half of a bundled checkpoint to a local file workers can load."""
    data = save_safetensors({k: v.contiguous() for k, v in state.items()})
    sha = hashlib.sha256(data).hexdigest()
    name = f"models/backbones/{sha}.safetensors"
    if not default_storage.exists(name):
        default_storage.save(name, ContentFile(data))
    return default_storage.path(name)
