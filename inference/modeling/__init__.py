"""Pure-PyTorch modelling for SPIDER Web: backbones, weight loading, heads, training, scoring.

No Django here: the Celery tasks and views call these entry points and own all storage.
"""

from .backbones import (
    Backbone,
    BackboneConfig,
    UnknownBackboneError,
    create_backbone,
    list_backbones,
    register_backbone,
)
from .convert import (
    WeightLoadError,
    checkpoint_filter_fn,
    load_backbone_state_dict,
    load_backbone_weights,
)
from .heads import (
    CENTRE,
    NUM_TILES,
    CentreLinearHead,
    SpiderContextHead,
    head_config,
    head_from_config,
)
from .pipeline import TileReadError, embed_tiles
from .scoring import PatchScores, confusion_matrix, metrics, score_patches
from .spider_checkpoint import ClassNameMismatchError, SpiderHead, load_spider_head
from .train import (
    TrainConfig,
    TrainProgress,
    assign_folds,
    out_of_fold_probs,
    predict_probs,
    train_head,
)

__all__ = [
    "CENTRE",
    "NUM_TILES",
    "Backbone",
    "BackboneConfig",
    "CentreLinearHead",
    "ClassNameMismatchError",
    "PatchScores",
    "SpiderContextHead",
    "SpiderHead",
    "TileReadError",
    "TrainConfig",
    "TrainProgress",
    "UnknownBackboneError",
    "WeightLoadError",
    "assign_folds",
    "checkpoint_filter_fn",
    "confusion_matrix",
    "create_backbone",
    "embed_tiles",
    "head_config",
    "head_from_config",
    "list_backbones",
    "load_backbone_state_dict",
    "load_backbone_weights",
    "load_spider_head",
    "metrics",
    "out_of_fold_probs",
    "predict_probs",
    "register_backbone",
    "score_patches",
    "train_head",
]
