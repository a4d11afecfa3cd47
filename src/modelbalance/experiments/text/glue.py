"""GLUE tasks through Hugging Face ``datasets``: online from the hub, or from local files in the hub's layout.

    from modelbalance.experiments.text.glue import load_glue
    splits = load_glue("sst2")                       # online: datasets.load_dataset("glue", "sst2")
    splits = load_glue("rte", data_dir="glue/")      # glue/rte/train-00000-of-00001.parquet, validation-...

Returns ``{"train": TextExamples, "validation": TextExamples}``; the validation split is GLUE's labelled dev set
(MNLI: validation_matched), which the paper reports on, so the text task uses it as its test set. GLUE's own test
split has no labels and is dropped.
"""

from __future__ import annotations

from pathlib import Path

from modelbalance.experiments.text.examples import TextExamples

# task -> (first text column, second text column or None, label names, dev split)
GLUE_TASKS = {
    "sst2": ("sentence", None, ["negative", "positive"], "validation"),
    "cola": ("sentence", None, ["unacceptable", "acceptable"], "validation"),
    "mrpc": ("sentence1", "sentence2", ["not_equivalent", "equivalent"], "validation"),
    "rte": ("sentence1", "sentence2", ["entailment", "not_entailment"], "validation"),
    "qnli": ("question", "sentence", ["entailment", "not_entailment"], "validation"),
    "qqp": ("question1", "question2", ["not_duplicate", "duplicate"], "validation"),
    "mnli": ("premise", "hypothesis", ["entailment", "neutral", "contradiction"], "validation_matched"),
}
_FORMATS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "json", ".json": "json"}


def _datasets():
    try:
        import datasets
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            "GLUE needs Hugging Face datasets: pip install 'modelbalance[text]'"
        ) from None
    return datasets


def _local_files(data_dir: Path, name: str, split: str) -> tuple[str, list[str]]:
    folder = data_dir / name if (data_dir / name).is_dir() else data_dir
    files = sorted(
        p for p in folder.iterdir() if p.is_file() and p.name.startswith(split) and p.suffix in _FORMATS
    )
    files = [
        p for p in files if not p.name.startswith(f"{split}_")
    ] or files  # "validation" vs "validation_mismatched"
    if not files:
        raise FileNotFoundError(f"{folder}: no {split}-* file (.parquet, .csv or .jsonl) for GLUE {name}")
    return _FORMATS[files[0].suffix], [str(p) for p in files]


def _examples(table, name: str) -> TextExamples:
    first, second, names, _ = GLUE_TASKS[name]
    missing = [c for c in (first, second, "label") if c and c not in table.column_names]
    if missing:
        raise ValueError(f"GLUE {name}: columns {missing} missing (have {table.column_names})")
    labels = [int(y) for y in table["label"]]
    keep = [i for i, y in enumerate(labels) if 0 <= y < len(names)]  # -1 marks unlabelled rows
    return TextExamples(
        text=[table[first][i] for i in keep],
        text_pair=[table[second][i] for i in keep] if second else None,
        label=[labels[i] for i in keep],
        label_names=list(names),
    )


def load_glue(name: str, *, data_dir: str | Path | None = None) -> dict[str, TextExamples]:
    """The train and (labelled) dev splits of GLUE task ``name`` (see the module docstring)."""
    if name not in GLUE_TASKS:
        raise ValueError(f"unknown GLUE task {name!r}; known: {', '.join(GLUE_TASKS)}")
    datasets = _datasets()
    dev = GLUE_TASKS[name][3]
    out = {}
    for ours, theirs in (("train", "train"), ("validation", dev)):
        if data_dir is None:
            try:
                table = datasets.load_dataset("glue", name, split=theirs)
            except Exception as err:  # no network, hub errors: one line that says what to do
                raise FileNotFoundError(
                    f"cannot load GLUE {name} from the Hugging Face hub ({type(err).__name__}: "
                    f"{str(err).splitlines()[0][:200]}); offline, pass --task-param data_dir=<folder with "
                    f"{name}/train-*.parquet and {name}/{dev}-*.parquet>"
                ) from None
        else:
            fmt, files = _local_files(Path(data_dir), name, theirs)
            table = datasets.load_dataset(fmt, data_files={theirs: files}, split=theirs)
        out[ours] = _examples(table, name)
    return out
