"""A user's own text classification table: ``.csv``, ``.tsv``, ``.jsonl`` (``.json`` lines) or ``.parquet``.

    from modelbalance.experiments.text.files import load_text_file
    examples = load_text_file("reviews.csv", text_column="review", label_column="stars")

Columns: ``text``, an optional ``text_pair`` (used when present), ``label`` (strings or integers; class ids follow
the sorted label values), and an optional ``split`` (``train`` / ``test``; ``validation``, ``dev`` and ``valid``
mean validation). Every problem is one ValueError that says what to change.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from modelbalance.experiments.text.examples import TextExamples

SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet")
_SPLITS = {
    "train": "train",
    "test": "test",
    "validation": "validation",
    "dev": "validation",
    "valid": "validation",
}


def read_table(path: str | Path) -> pd.DataFrame:
    """The file as a DataFrame (by its suffix)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    suffix = path.suffix.lower()
    try:
        # only empty cells are missing: texts such as "NA" or "None" are texts
        if suffix == ".csv":
            return pd.read_csv(path, keep_default_na=False, na_values=[""])
        if suffix == ".tsv":
            return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""])
        if suffix in (".jsonl", ".json"):
            try:
                return pd.read_json(path, lines=True)
            except ValueError:
                if suffix == ".json":  # an array of records rather than JSON lines
                    return pd.read_json(path, orient="records")
                raise
        if suffix == ".parquet":
            try:
                return pd.read_parquet(path)
            except ImportError:
                raise ValueError(f"{path}: reading parquet needs pyarrow: pip install pyarrow") from None
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as err:
        if "pyarrow" in str(err):
            raise
        raise ValueError(f"{path}: cannot read it as {suffix[1:]}: {str(err).splitlines()[0]}") from None
    raise ValueError(f"{path}: text data must end in {', '.join(SUFFIXES)}")


def _record(path: Path, row: int) -> str:
    """Where the 0-based data row ``row`` is, as a user finds it in the file: a JSON-lines file has one record per
    line; a CSV's rows are counted from 1 after the header (a quoted field may span lines, so not "line"); other
    formats count records from 1."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return f"line {row + 1}"
    if suffix in (".csv", ".tsv"):
        return f"data row {row + 1} (header not counted)"
    return f"record {row + 1}"


def _text_column(frame: pd.DataFrame, column: str, path: Path) -> list[str]:
    values = frame[column]
    bad = values.isna() | ~values.map(lambda v: isinstance(v, str))
    if bad.all():
        raise ValueError(f"{path}: column {column!r} holds no text")
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise ValueError(
            f"{path}: column {column!r} at {_record(path, row)} is empty or not text ({values.iloc[row]!r})"
        )
    empty = values.str.strip() == ""
    if empty.any():
        row = int(empty.to_numpy().nonzero()[0][0])
        raise ValueError(f"{path}: column {column!r} at {_record(path, row)} is an empty text")
    return values.tolist()


def load_text_file(
    path: str | Path,
    *,
    text_column: str = "text",
    text_pair_column: str | None = None,
    label_column: str = "label",
    split_column: str = "split",
) -> TextExamples:
    """Read a labelled text table (see the module docstring); ``text_pair_column=None`` uses ``text_pair`` if the
    file has it."""
    path = Path(path)
    frame = read_table(path)
    if frame.empty:
        raise ValueError(f"{path}: the file holds no rows")
    have = ", ".join(map(str, frame.columns))
    for column, option in ((text_column, "text_column"), (label_column, "label_column")):
        if column not in frame:
            raise ValueError(
                f"{path}: no column {column!r} (columns: {have}); name yours with --task-param {option}=..."
            )
    if text_pair_column is not None and text_pair_column not in frame:
        raise ValueError(f"{path}: no column {text_pair_column!r} (columns: {have})")
    pair_column = text_pair_column or ("text_pair" if "text_pair" in frame else None)
    labels = frame[label_column]
    if labels.isna().any():
        row = int(labels.isna().to_numpy().nonzero()[0][0])
        raise ValueError(f"{path}: column {label_column!r} at {_record(path, row)} has no label")
    names = sorted(
        {str(v) for v in labels},
        key=lambda v: (not v.lstrip("-").isdigit(), int(v) if v.lstrip("-").isdigit() else 0, v),
    )
    if len(names) < 2:
        raise ValueError(
            f"{path}: column {label_column!r} holds a single class ({names[0]!r}); a classifier needs two"
        )
    ids = {name: i for i, name in enumerate(names)}
    split = None
    if split_column in frame:
        raw = frame[split_column].astype(str).str.strip().str.lower()
        unknown = sorted(set(raw) - set(_SPLITS))
        if unknown:
            raise ValueError(
                f"{path}: column {split_column!r} has values {unknown}; use train, validation or test"
            )
        split = raw.map(_SPLITS).tolist()
    return TextExamples(
        text=_text_column(frame, text_column, path),
        text_pair=_text_column(frame, pair_column, path) if pair_column else None,
        label=[ids[str(v)] for v in labels],
        label_names=names,
        split=split,
    )
