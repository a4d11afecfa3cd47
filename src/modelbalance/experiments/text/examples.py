"""TextExamples: a labelled text corpus (single texts or pairs) as the text loaders return it.

examples = TextExamples(text=["good", "bad"], text_pair=None, label=[1, 0], label_names=["neg", "pos"])
len(examples), examples.describe()         # (2, '2 examples, 2 classes: neg 1, pos 1')
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class TextExamples:
    """A labelled corpus.

    Examples
    --------
    >>> ex = TextExamples(text=["a", "b", "c"], text_pair=None, label=[0, 1, 1], label_names=["x", "y"])
    >>> ex.subset([0, 2]).label
    [0, 1]

    Attributes
    ----------
    text : list of str
    text_pair : list of str or None
        The second text of sentence-pair tasks.
    label : list of int
        Class ids in ``0 .. len(label_names) - 1``.
    label_names : list of str
    group : list of str or None
        An id that must never be split across train / validation / test (e.g. a WordNet synset).
    split : list of str or None
        A provided split per example (``train``, ``validation`` or ``test``).
    source : list of str or None
        Where each example came from (e.g. the corpus folder), for descriptions only.
    """

    text: list[str]
    text_pair: list[str] | None
    label: list[int]
    label_names: list[str]
    group: list[str] | None = None
    split: list[str] | None = None
    source: list[str] | None = field(default=None, compare=False)

    def __post_init__(self):
        n = len(self.text)
        for name in ("text_pair", "label", "group", "split", "source"):
            values = getattr(self, name)
            if values is not None and len(values) != n:
                raise ValueError(f"TextExamples: {name} has {len(values)} entries, text has {n}")
        if len(self.label_names) < 2:
            raise ValueError(f"TextExamples: need at least 2 classes, got {list(self.label_names)}")
        for i, y in enumerate(self.label):
            if not isinstance(y, int) or not 0 <= y < len(self.label_names):
                raise ValueError(
                    f"TextExamples: label {y!r} of example {i} is not a class id in 0..{len(self.label_names) - 1}"
                )
        for column in ("text", "text_pair"):
            values = getattr(self, column)
            for i, value in enumerate(values or ()):
                if not isinstance(value, str) or not value.strip():
                    raise ValueError(
                        f"TextExamples: {column} of example {i} is empty or not text ({value!r})"
                    )
        if len(set(self.label)) < 2:
            raise ValueError("TextExamples: every example has the same label; a classifier needs two classes")

    def __len__(self) -> int:
        return len(self.text)

    def subset(self, indices) -> TextExamples:
        """The examples at ``indices`` (same classes)."""
        idx = [int(i) for i in indices]

        def pick(values):
            return None if values is None else [values[i] for i in idx]

        return TextExamples(
            text=pick(self.text),
            text_pair=pick(self.text_pair),
            label=pick(self.label),
            label_names=list(self.label_names),
            group=pick(self.group),
            split=pick(self.split),
            source=pick(self.source),
        )

    def describe(self) -> str:
        counts = Counter(self.label)
        shown = ", ".join(f"{name} {counts.get(i, 0)}" for i, name in enumerate(self.label_names))
        return f"{len(self)} examples, {len(self.label_names)} classes: {shown}"
