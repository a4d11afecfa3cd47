"""The results folder: one JSON file per finished run, written atomically, and the rules that protect it.

Layout of a results folder::

    DIR/config.json        the sweep's ExperimentConfig
    DIR/runs/*.json        one record per finished (or failed) run; the resume state
    DIR/runs.tar.gz        the same records archived, as a published folder keeps them (read, never written)
    DIR/results.csv|json   one row per run (derived from runs/)
    DIR/grid.csv           validation metric per (fraction, method, lr) and the picked lr
    DIR/summary.md         tables and paired tests
    DIR/plots/*.png

Nothing in a folder that holds another experiment's results is touched unless the caller passes ``overwrite``.
A folder's runs are those in ``runs/`` and those in ``runs.tar.gz``; a record in ``runs/`` wins over an archived
one with the same key (it was written after the folder was published).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tarfile
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from modelbalance.experiments.config import SWEEP_FIELDS, ExperimentConfig

OUTPUT_NAMES = (
    "config.json",
    "runs",
    "runs.tar.gz",
    "results.csv",
    "results.json",
    "grid.csv",
    "summary.md",
    "plots",
)
_LOCK_NAME = ".sweep.lock"


class FolderConflict(Exception):
    """The results folder holds something the current sweep must not overwrite (message says what to do)."""


def run_key(task: str, model: str, fraction: float, seed: int, method: str, lr: float, run_hash: str) -> str:
    """The identity of a run: equal keys mean the stored result can be reused.

    Examples
    --------
    >>> run_key("burgers", "fno", 0.1, 0, "tb", 1e-3, "abc")
    'burgers|fno|0.1|0|tb|0.001|abc'
    """
    return f"{task}|{model}|{float(fraction)!r}|{int(seed)}|{method}|{float(lr)!r}|{run_hash}"


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def to_json(value: Any) -> str:
    """JSON text with NaN/inf written as null (strict JSON, readable by any tool)."""
    return json.dumps(_finite_or_none(value), indent=1, sort_keys=False)


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # numpy / torch scalars
        return _finite_or_none(value.item())
    return value


class ResultsFolder:
    """A results folder: checks what it holds, stores run records, writes the derived files atomically.

    Examples
    --------
    >>> import tempfile
    >>> folder = ResultsFolder(tempfile.mkdtemp())
    >>> folder.save_run({"key": "k", "status": "ok", "nrmse": 0.1})
    >>> folder.load_runs()["k"]["nrmse"]
    0.1
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.runs_dir = self.path / "runs"
        self.runs_archive = self.path / "runs.tar.gz"
        self._archive_read: tuple[tuple[int, int], dict[str, dict]] | None = (
            None  # (stat, records) of the archive
        )
        self.config_path = self.path / "config.json"
        self.plots_dir = self.path / "plots"

    # ------------------------------------------------------------------ state checks
    def existing_outputs(self) -> list[str]:
        """Names of result files/folders already present."""
        return [name for name in OUTPUT_NAMES if (self.path / name).exists()]

    def saved_config(self) -> ExperimentConfig | None:
        """The config stored by an earlier sweep, or None."""
        if not self.config_path.is_file():
            return None
        try:
            return ExperimentConfig.from_dict(json.loads(self.config_path.read_text()))
        except (ValueError, TypeError) as err:
            raise FolderConflict(
                f"{self.config_path} is unreadable ({err}); use --overwrite or another --out"
            ) from None

    def check(self, config: ExperimentConfig, *, resume: bool = False, overwrite: bool = False) -> str:
        """Decide whether ``config`` may write here; returns ``"new"``, ``"same"`` or ``"resume"``.

        Raises
        ------
        FolderConflict
            The folder is not a directory, holds results of another config (or results without a config),
            or another sweep is writing to it.
        """
        if self.path.exists() and not self.path.is_dir():
            raise FolderConflict(f"--out {self.path} exists and is not a directory")
        self._check_lock()
        if overwrite or not self.existing_outputs():
            return "new"
        self._archived_runs()  # an unreadable runs.tar.gz is an error now, not once the sweep has started
        saved = self.saved_config()
        if saved is None:
            raise FolderConflict(
                f"{self.path} already holds results ({', '.join(self.existing_outputs())}) without a config.json; "
                "use --overwrite to replace them or choose another --out"
            )
        differing = config.differences(saved)
        if not differing:
            return "same"
        run_fields = [name for name in differing if name not in SWEEP_FIELDS and name != "method_options"]
        if resume and not run_fields:
            return "resume"
        hint = (
            "use --resume to extend that sweep, --overwrite to replace it, or another --out"
            if not run_fields
            else "use --overwrite to replace them or choose another --out"
        )
        changes = ", ".join(f"{name} ({_short(saved, name)} -> {_short(config, name)})" for name in differing)
        raise FolderConflict(f"{self.path} holds results of a different config: {changes}; {hint}")

    def claim(self, config: ExperimentConfig, *, overwrite: bool = False) -> None:
        """Take the folder for ``config``: clear our old outputs when overwriting, save the config, lock."""
        if overwrite:
            for name in OUTPUT_NAMES:
                target = self.path / name
                if target.is_dir():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        saved = None if overwrite or not self.config_path.is_file() else self.saved_config()
        if saved is None or _without_out(saved) != _without_out(config):
            # a folder moved since it ran (a published one) keeps its file as it was written
            atomic_write_text(self.config_path, to_json(config.to_dict()))
        atomic_write_text(self.path / _LOCK_NAME, str(os.getpid()))

    def release(self) -> None:
        """Drop the lock taken by :meth:`claim`."""
        (self.path / _LOCK_NAME).unlink(missing_ok=True)

    def _check_lock(self) -> None:
        lock = self.path / _LOCK_NAME
        if not lock.is_file():
            return
        try:
            pid = int(lock.read_text().strip())
        except ValueError:
            return
        if pid == os.getpid() or not _process_alive(pid):
            return  # a stale lock of a killed sweep
        raise FolderConflict(
            f"another sweep (process {pid}) is writing to {self.path}; wait for it or kill it"
        )

    # ------------------------------------------------------------------ runs
    def run_path(self, key: str) -> Path:
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        return self.runs_dir / f"{digest}.json"

    def save_run(self, record: dict) -> None:
        """Store one run record (must carry ``key``), atomically."""
        atomic_write_text(self.run_path(record["key"]), to_json(record))

    def holds_runs(self) -> bool:
        """Whether a sweep stored runs here: a ``runs/`` directory or a published ``runs.tar.gz``."""
        return self.runs_dir.is_dir() or self.runs_archive.is_file()

    def has_runs(self) -> bool:
        """Whether the folder holds any run record, in ``runs/`` or archived."""
        if self.runs_dir.is_dir() and next(self.runs_dir.glob("*.json"), None) is not None:
            return True
        return bool(self._archived_runs())

    def load_runs(self) -> dict[str, dict]:
        """All stored records by key (unreadable files are skipped: they are reported, never fatal).

        Raises
        ------
        FolderConflict
            ``runs.tar.gz`` is there but is not a readable gzip tar archive.
        """
        records = dict(self._archived_runs())
        if not self.runs_dir.is_dir():
            return records
        for path in sorted(self.runs_dir.glob("*.json")):
            record = _record_or_none(path.read_bytes())
            if record is not None:
                records[record["key"]] = record
        return records

    def _archived_runs(self) -> dict[str, dict]:
        """The records in ``runs.tar.gz`` (members ``runs/*.json``), read without unpacking anything, and once per
        folder object while the file stays the same (a sweep checks, then loads, the same folder)."""
        records: dict[str, dict] = {}
        if not self.runs_archive.is_file():
            return records
        stat = self.runs_archive.stat()
        if self._archive_read is not None and self._archive_read[0] == (stat.st_mtime_ns, stat.st_size):
            return self._archive_read[1]
        try:
            with tarfile.open(self.runs_archive, "r:gz") as archive:
                for member in archive:
                    name = PurePosixPath(member.name)
                    if not member.isfile() or name.suffix != ".json" or name.parent.name != "runs":
                        continue
                    record = _record_or_none(archive.extractfile(member).read())
                    if record is not None:
                        records[record["key"]] = record
        except (tarfile.TarError, OSError, EOFError) as err:
            raise FolderConflict(
                f"{self.runs_archive} is not a readable run archive ({err}); restore it from git or move it away"
            ) from None
        self._archive_read = ((stat.st_mtime_ns, stat.st_size), records)
        return records

    def write_text(self, name: str, text: str) -> Path:
        path = self.path / name
        atomic_write_text(path, text)
        return path


def _without_out(config: ExperimentConfig) -> dict:
    return {name: value for name, value in config.to_dict().items() if name != "out"}


def _record_or_none(raw: bytes) -> dict | None:
    """A run record from a file's bytes, or None when it is not one (a half-written or foreign file)."""
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    return record if isinstance(record, dict) and "key" in record else None


def _short(config: ExperimentConfig, name: str) -> str:
    text = json.dumps(config.to_dict().get(name))
    return text if len(text) <= 40 else text[:37] + "..."


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
