"""WordNet nouns as two text tasks: gloss -> supersense (26 classes), and (word, gloss) -> is this a sense of it.

    from modelbalance.experiments.text.wordnet import load_wordnet_supersense, load_gloss_pairs
    supersense = load_wordnet_supersense()   # ~82k noun synsets (install: ... text.assets install wordnet)
    pairs = load_gloss_pairs(max_examples=8000, seed=0)

``data.noun`` lines read ``offset lex_filenum ss_type w_cnt(hex) word lex_id ... | gloss``; the lexicographer file
number names the supersense (noun.Tops = 3 ... noun.time = 28). A gloss is the definition before its quoted usage
examples (those often contain the word itself, which would make the pair task trivial).

Pairs: synsets of one supersense are matched two by two at random (seeded); a matched pair {s, t} gives four
examples, (a word of s, gloss of s) and (a word of t, gloss of t) labelled 1, (the word of s, gloss of t) and (the
word of t, gloss of s) labelled 0, where neither word belongs to the other synset. Each synset is in exactly one
group, and a group never straddles two splits, so no gloss or word-sense pairing leaks from training to test.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modelbalance.experiments.text.assets import wordnet_dict_dir
from modelbalance.experiments.text.examples import TextExamples

NOUN_SUPERSENSES = {
    3: "Tops", 4: "act", 5: "animal", 6: "artifact", 7: "attribute", 8: "body", 9: "cognition",
    10: "communication", 11: "event", 12: "feeling", 13: "food", 14: "group", 15: "location", 16: "motive",
    17: "object", 18: "person", 19: "phenomenon", 20: "plant", 21: "possession", 22: "process", 23: "quantity",
    24: "relation", 25: "shape", 26: "state", 27: "substance", 28: "time",
}  # fmt: skip
_EXAMPLE = re.compile(r';?\s*"')


@dataclass(frozen=True)
class NounSynset:
    offset: str
    supersense: str
    words: tuple[str, ...]
    gloss: str


def read_noun_synsets(dict_dir: str | Path | None = None) -> list[NounSynset]:
    """Every noun synset of ``data.noun`` (license header skipped), in file order (parsed once per file)."""
    path = Path(dict_dir or wordnet_dict_dir()) / "data.noun"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: WordNet's data.noun not found")
    stat = path.stat()
    return list(_read_noun_synsets(str(path), stat.st_size, stat.st_mtime_ns))


@functools.lru_cache(maxsize=4)
def _read_noun_synsets(filename: str, _size: int, _mtime: int) -> tuple[NounSynset, ...]:
    path = Path(filename)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: WordNet's data.noun not found")
    synsets = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            if line.startswith("  ") or not line.strip():
                continue
            head, bar, gloss = line.partition(" | ")
            fields = head.split()
            try:
                lex_file, count = int(fields[1]), int(fields[3], 16)
                words = tuple(fields[4 + 2 * i].replace("_", " ") for i in range(count))
            except (IndexError, ValueError):
                raise ValueError(f"{path}:{number}: not a WordNet data line") from None
            if lex_file not in NOUN_SUPERSENSES:
                raise ValueError(f"{path}:{number}: lexicographer file {lex_file} is not a noun supersense")
            definition = _EXAMPLE.split(gloss.strip(), maxsplit=1)[0].strip().rstrip(";").strip()
            synsets.append(
                NounSynset(fields[0], NOUN_SUPERSENSES[lex_file], words, definition or gloss.strip())
            )
    if not synsets:
        raise ValueError(f"{path}: holds no synsets")
    return tuple(synsets)


def _strip_markers(word: str) -> str:
    return re.sub(r"\([a-z]+\)$", "", word)  # adjective markers such as (a) never occur on nouns, but be safe


def load_wordnet_supersense(dict_dir: str | Path | None = None) -> TextExamples:
    """Gloss -> supersense (26 classes, names ``noun.<name>`` order), one example per synset, grouped by synset."""
    synsets = read_noun_synsets(dict_dir)
    names = [NOUN_SUPERSENSES[k] for k in sorted(NOUN_SUPERSENSES)]
    index = {name: i for i, name in enumerate(names)}
    return TextExamples(
        text=[s.gloss for s in synsets],
        text_pair=None,
        label=[index[s.supersense] for s in synsets],
        label_names=[f"noun.{n}" for n in names],
        group=[s.offset for s in synsets],
    )


def load_gloss_pairs(
    dict_dir: str | Path | None = None, *, seed: int = 0, max_examples: int | None = 20_000
) -> TextExamples:
    """(word, gloss) pairs: 1 if the gloss defines a sense of the word, else 0 (hard negatives from the same
    supersense); balanced, grouped so that a synset stays in one split (module docstring)."""
    synsets = read_noun_synsets(dict_dir)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x90A5]))
    by_supersense: dict[str, list[NounSynset]] = {}
    for synset in synsets:
        by_supersense.setdefault(synset.supersense, []).append(synset)
    text, pair, label, group = [], [], [], []
    groups = []
    for name in sorted(by_supersense):
        members = by_supersense[name]
        order = rng.permutation(len(members))
        for a, b in zip(order[0::2], order[1::2]):
            s, t = members[a], members[b]
            word_s = _strip_markers(s.words[rng.integers(len(s.words))])
            word_t = _strip_markers(t.words[rng.integers(len(t.words))])
            if word_s in t.words or word_t in s.words:
                continue  # a shared word would make a "negative" true
            groups.append((s, t, word_s, word_t))
    chosen = rng.permutation(len(groups))
    if max_examples is not None:
        chosen = chosen[: max(1, max_examples // 4)]
    for k in sorted(chosen.tolist()):
        s, t, word_s, word_t = groups[k]
        key = f"{s.offset}+{t.offset}"
        for word, gloss, y in (
            (word_s, s.gloss, 1),
            (word_t, t.gloss, 1),
            (word_s, t.gloss, 0),
            (word_t, s.gloss, 0),
        ):
            text.append(word)
            pair.append(gloss)
            label.append(y)
            group.append(key)
    return TextExamples(
        text=text, text_pair=pair, label=label, label_names=["other sense", "defines the word"], group=group
    )
