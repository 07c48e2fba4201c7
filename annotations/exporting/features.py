"""The columns of a Hugging Face export, declared once for the Arrow schema and the card.

The schema carries the ``huggingface`` metadata `datasets` reads its features from, written
here directly (the same JSON `datasets.Features` produces) so an export does not pay for
importing `datasets`; the tests load every export back with `datasets` to hold us to it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pyarrow as pa

IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
VALUE_TYPES = {"int64": pa.int64(), "int32": pa.int32(), "float32": pa.float32(),
               "string": pa.string()}


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    kind: str  # "image", "class_label" or a datasets Value dtype


def feature_spec(context: bool) -> list[FeatureSpec]:
    spec = [FeatureSpec("image", "image")]
    if context:
        spec.append(FeatureSpec("context", "image"))
    spec += [FeatureSpec("label", "class_label"), FeatureSpec("original_label", "class_label"),
             FeatureSpec("patch_id", "int64"), FeatureSpec("image_name", "string"),
             FeatureSpec("slide_id", "string"), FeatureSpec("slide_x", "int64"),
             FeatureSpec("slide_y", "int64"), FeatureSpec("review_status", "string"),
             FeatureSpec("n_reviews", "int32"), FeatureSpec("agreement", "float32"),
             FeatureSpec("model_version", "string"), FeatureSpec("model_confidence", "float32")]
    return spec


def image_column(data: pa.Array) -> pa.StructArray:
    """The struct `datasets.Image` stores, from a binary array: the bytes themselves, no
    path."""
    return pa.StructArray.from_arrays([data, pa.nulls(len(data), pa.string())],
                                      names=["bytes", "path"])


def feature_json(spec: list[FeatureSpec], class_names: tuple[str, ...]) -> dict:
    """``datasets.Features.to_dict()`` of the export's features."""
    def one(kind: str) -> dict:
        if kind == "image":
            return {"_type": "Image"}
        if kind == "class_label":
            return {"names": list(class_names), "_type": "ClassLabel"}
        return {"dtype": kind, "_type": "Value"}

    return {f.name: one(f.kind) for f in spec}


def arrow_schema(spec: list[FeatureSpec], class_names: tuple[str, ...]) -> pa.Schema:
    """The Arrow schema, with the ``huggingface`` metadata `datasets` reads features from."""
    fields = [pa.field(f.name, IMAGE_TYPE if f.kind == "image" else
                       pa.int64() if f.kind == "class_label" else VALUE_TYPES[f.kind])
              for f in spec]
    info = {"info": {"features": feature_json(spec, class_names)}}
    return pa.schema(fields, metadata={"huggingface": json.dumps(info, ensure_ascii=False)})


def yaml_features(spec: list[FeatureSpec], class_names: tuple[str, ...]) -> list[dict]:
    """``dataset_info.features`` as the card's YAML spells it."""
    out: list[dict] = []
    for f in spec:
        if f.kind == "class_label":
            names = {str(i): name for i, name in enumerate(class_names)}
            out.append({"name": f.name, "dtype": {"class_label": {"names": names}}})
        else:
            out.append({"name": f.name, "dtype": f.kind})
    return out
