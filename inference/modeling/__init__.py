"""Pure-PyTorch modelling for SPIDER Web: backbones, weight loading, heads, training, scoring.

No Django here: the Celery tasks and views call these entry points and own all storage.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the real names, for type checkers
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
    from .pipeline import (
        TileReadError,
        embed_tiles,
    )
    from .scoring import (
        PatchScores,
        confusion_matrix,
        metrics,
        score_patches,
    )
    from .spider_checkpoint import (
        ClassNameMismatchError,
        SpiderHead,
        load_spider_head,
    )
    from .train import (
        OutOfFold,
        TrainConfig,
        TrainProgress,
        assign_folds,
        out_of_fold_fit,
        out_of_fold_probs,
        predict_probs,
        train_head,
    )

# Each name is imported from its module on first use, so importing one light module of this
# package (or the package itself) does not load torch and timm.
_LOCATIONS = {
    "Backbone": ".backbones",
    "BackboneConfig": ".backbones",
    "CENTRE": ".heads",
    "CentreLinearHead": ".heads",
    "ClassNameMismatchError": ".spider_checkpoint",
    "NUM_TILES": ".heads",
    "PatchScores": ".scoring",
    "SpiderContextHead": ".heads",
    "SpiderHead": ".spider_checkpoint",
    "TileReadError": ".pipeline",
    "OutOfFold": ".train",
    "TrainConfig": ".train",
    "TrainProgress": ".train",
    "UnknownBackboneError": ".backbones",
    "WeightLoadError": ".convert",
    "assign_folds": ".train",
    "checkpoint_filter_fn": ".convert",
    "confusion_matrix": ".scoring",
    "create_backbone": ".backbones",
    "embed_tiles": ".pipeline",
    "head_config": ".heads",
    "head_from_config": ".heads",
    "list_backbones": ".backbones",
    "load_backbone_state_dict": ".convert",
    "load_backbone_weights": ".convert",
    "load_spider_head": ".spider_checkpoint",
    "metrics": ".scoring",
    "out_of_fold_fit": ".train",
    "out_of_fold_probs": ".train",
    "predict_probs": ".train",
    "register_backbone": ".backbones",
    "score_patches": ".scoring",
    "train_head": ".train",
}


def __getattr__(name: str) -> Any:
    if name not in _LOCATIONS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_LOCATIONS[name], __name__), name)


__all__ = [
    "CENTRE",
    "NUM_TILES",
    "Backbone",
    "BackboneConfig",
    "CentreLinearHead",
    "ClassNameMismatchError",
    "OutOfFold",
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
    "out_of_fold_fit",
    "out_of_fold_probs",
    "predict_probs",
    "register_backbone",
    "score_patches",
    "train_head",
]
