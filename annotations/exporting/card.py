"""The dataset card (README.md): YAML front matter that `datasets` and the Hub read, and a
plain statement of what the snapshot is. Nothing in it depends on when it was written."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import yaml

from annotations.models import ImportJob, Project
from annotations.organs import SPIDER_CITATION, SPIDER_CLASSES, SPIDER_LICENCE

from .features import FeatureSpec, yaml_features
from .summary import SnapshotStats

HUB_LICENCE_IDS = {
    "cc by-nc 4.0": "cc-by-nc-4.0", "cc-by-nc-4.0": "cc-by-nc-4.0",
    "cc by 4.0": "cc-by-4.0", "cc-by-4.0": "cc-by-4.0",
    "cc by-sa 4.0": "cc-by-sa-4.0", "cc-by-sa-4.0": "cc-by-sa-4.0",
    "cc0": "cc0-1.0", "cc0 1.0": "cc0-1.0", "cc0-1.0": "cc0-1.0",
    "apache-2.0": "apache-2.0", "apache 2.0": "apache-2.0", "mit": "mit",
}


@dataclass(frozen=True)
class SplitInfo:
    name: str
    num_examples: int
    num_bytes: int
    download_size: int
    files: tuple[str, ...]  # paths relative to the dataset folder


@dataclass(frozen=True)
class Licence:
    hub_id: str
    text: str
    citation: str | None


def spider_derived(project: Project) -> bool:
    return (project.organ.lower() in SPIDER_CLASSES
            or project.import_jobs.filter(kind=ImportJob.Kind.SPIDER).exists())


def licence_of(project: Project) -> Licence:
    """SPIDER-derived data keeps SPIDER's licence and citation whatever else is set."""
    own = project.licence.strip()
    if spider_derived(project):
        text = SPIDER_LICENCE + ("" if not own or own == SPIDER_LICENCE
                                 else f" (project licence: {own})")
        return Licence("cc-by-nc-4.0", text, SPIDER_CITATION)
    if not own:
        return Licence("unknown", "not stated by the project", None)
    return Licence(HUB_LICENCE_IDS.get(own.lower(), "other"), own, None)


def front_matter(project: Project, spec: list[FeatureSpec], class_names: tuple[str, ...],
                 splits: list[SplitInfo], licence: Licence) -> dict:
    matter: dict = {"license": licence.hub_id}
    if licence.hub_id == "other":
        matter["license_name"] = licence.text
    matter.update({
        "pretty_name": project.name,
        "task_categories": ["image-classification"],
        "tags": ["pathology", "histology", "medical"] + (["spider"] if licence.citation else []),
        "configs": [{"config_name": "default", "data_files": [
            {"split": s.name, "path": f"data/{s.name}-*"} for s in splits]}],
        "dataset_info": {
            "features": yaml_features(spec, class_names),
            "splits": [{"name": s.name, "num_bytes": s.num_bytes, "num_examples": s.num_examples}
                       for s in splits],
            "download_size": sum(s.download_size for s in splits),
            "dataset_size": sum(s.num_bytes for s in splits),
        },
    })
    return matter


def table_cell(value: object) -> str:
    """A Markdown table cell: class names come from the dataset, and a ``|`` or a line break
    in one would split it into columns or end the table."""
    return " ".join(str(value).replace("|", "\\|").split())


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(table_cell(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def body(project: Project, stats: SnapshotStats, splits: list[SplitInfo], licence: Licence,
         filter_text: str, context: bool, snapshot: str) -> str:
    names = [s.name for s in splits]
    class_rows = []
    for name in (*stats.classes.names, ""):  # "": patches without a label, if any
        counts = [stats.by_split_class.get((split, name), 0) for split in names]
        if name or sum(counts):
            class_rows.append([name or "(no label)", *counts, sum(counts)])
    totals = ["**total**", *[s.num_examples for s in splits], stats.rows]
    agreement = ("no patch has a reviewer's decision yet" if stats.mean_agreement is None else
                 f"{stats.with_decisions} patches have at least one reviewer's decision; on "
                 f"average {stats.mean_agreement:.1%} of a patch's reviewers chose its current "
                 f"label. {stats.multi_reviewed} patches were decided by two or more reviewers, "
                 f"{stats.unanimous} of them unanimously")
    models = ("no model predictions are included" if not stats.models else
              "; ".join(f"`{name}` for {n} patches" for name, n in stats.models.items())
              + (f"; {stats.without_model} patches have no prediction"
                 if stats.without_model else ""))
    changes = (table(["original label", "current label", "patches"],
                     [[o or "(none)", c or "(none)", n] for (o, c), n in
                      sorted(stats.changes.items(), key=lambda kv: (-kv[1], kv[0]))])
               if stats.changes else "No label was changed.")
    parts = [
        f"# {project.name}",
        f"A reviewed snapshot of the SPIDER Web project `{project.slug}`: one row per central "
        "224x224 patch (20x) with its current label after review"
        + (" and its 1120x1120 context (the 5x5 neighbouring patches; missing ones blank)"
           if context else "") + ".",
        "\n".join([
            f"- Export filter: {filter_text}; context: {'composite' if context else 'none'}.",
            f"- Rows: {stats.rows}; splits as imported ({', '.join(names)}); no slide is in "
            "two splits.",
            f"- Snapshot: `{snapshot}` (sha256 over the data files' sha256)."]),
        "## Classes per split", table(["class", *names, "total"], [*class_rows, totals]),
        "## Review",
        f"{stats.reviewed} of {stats.rows} labels were reviewed; {stats.changed} differ from "
        "the original label.",
        table(["review status", "patches"], [[s, n] for s, n in sorted(stats.by_status.items())]),
        "### Changes (original -> current)", changes,
        "### Reviewer agreement", agreement + ".",
        "## Model", f"Predictions of the project's active model at export time: {models}.",
        "## Licence", f"{licence.text}.",
    ]
    if licence.citation:
        parts += ["## Citation", "This dataset derives from SPIDER; please cite:",
                  f"> {licence.citation}"]
    parts += ["## Columns", columns_text(context)]
    return "\n\n".join(parts) + "\n"


COLUMNS = [
    ["image", "the central 224x224 patch, the stored file byte for byte"],
    ["context", "the 1120x1120 5x5 composite around the patch, PNG, missing tiles blank"],
    ["label", "the current label after review (ClassLabel, class-index order)"],
    ["original_label", "the label as imported"],
    ["patch_id, image_name, slide_id", "where the patch comes from"],
    ["slide_x, slide_y", "level-0 pixel position on its whole slide (null for imported data)"],
    ["review_status", "unreviewed, confirmed, corrected, unsure, disputed or excluded"],
    ["n_reviews, agreement", "reviewers with a decision, and the share who chose `label`"],
    ["model_version, model_confidence", "the active model's version and its top probability"],
]


def columns_text(context: bool) -> str:
    return table(["column", "meaning"], [row for row in COLUMNS
                                         if context or row[0] != "context"])


def render_card(project: Project, spec: list[FeatureSpec], stats: SnapshotStats,
                splits: list[SplitInfo], filter_text: str, context: bool, snapshot: str) -> str:
    licence = licence_of(project)
    matter = yaml.safe_dump(front_matter(project, spec, stats.classes.names, splits, licence),
                            sort_keys=False, allow_unicode=True, width=10_000)
    return (f"---\n{matter}---\n\n"
            + body(project, stats, splits, licence, filter_text, context, snapshot))
