"""Turn a SOURCE string into something to analyse: a module, or the layers of a bare state dict.

SOURCE is one of:
- ``package.module:factory`` (installed, or a module in the current folder) or ``path/to/file.py:factory``: the
  factory is called with no arguments and must return an ``nn.Module`` (a module object itself is accepted too);
- a ``.pt`` / ``.pth`` / ``.bin`` / ``.ckpt`` file holding a state dict or a training checkpoint dict holding one
  (see :func:`unwrap_state_dict`), loaded with safe unpickling (tensors and plain containers only), or a
  ``.safetensors`` file. The format is read from the file's first bytes, not its name: a file that is neither
  says so, and a checkpoint holding other Python objects is refused with how to export a plain state dict instead;
- a local folder with a Hugging Face ``config.json`` (loaded with transformers' ``AutoModel``, offline), or a
  folder holding a PEFT adapter (``adapter_config.json``, base model loaded through peft);
- otherwise a Hugging Face model id, fetched through transformers (needs internet or a warm cache).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import pickle
import re
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from .main import UsageError

STATE_DICT_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")

# Keys under which training checkpoints keep the model's state dict (Lightning, the README's TempBalance snippet,
# common training scripts, a wrapped DDP module), tried in this order.
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "module")
_LAYOUTS = (
    "understood: a state dict, or a checkpoint dict holding one under 'state_dict', 'model_state_dict', 'model' "
    "or 'module', or as its only dict of tensors"
)


def first_line(err: BaseException, limit: int = 300) -> str:
    """The first non-blank line of an exception's message (its type name when the message is empty)."""
    lines = [line for line in str(err).strip().splitlines() if line.strip()]
    return lines[0][:limit] if lines else type(err).__name__


@dataclass
class Source:
    description: str
    model: nn.Module | None = None
    state_dict: dict | None = None


@contextlib.contextmanager
def _on_sys_path(folder: str):
    """``folder`` first on sys.path while the user's code is imported and run (its own imports may be lazy)."""
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        yield
    finally:
        if added and folder in sys.path:
            sys.path.remove(folder)


def _factory(spec: str) -> Source:
    target, _, attr = spec.rpartition(":")
    is_file = target.endswith(".py") or os.sep in target
    if is_file and not Path(target).is_file():
        raise UsageError(f"no such file: {target}")
    # The console script's sys.path lacks the current folder (unlike `python -m`), so `mymodels:build` next to
    # mymodels.py would not import; a file's own folder lets it import its siblings.
    folder = str(Path(target).resolve().parent) if is_file else os.getcwd()
    with _on_sys_path(folder):
        module = _import(target, attr, is_file)
        if not hasattr(module, attr):
            raise UsageError(f"module {target!r} has no attribute {attr!r}")
        obj = getattr(module, attr)
        try:
            model = obj if isinstance(obj, nn.Module) else obj()
        except Exception as err:
            raise UsageError(f"calling {spec} failed: {type(err).__name__}: {err}") from None
    if not isinstance(model, nn.Module):
        raise UsageError(f"{spec} returned {type(model).__name__}, not a torch.nn.Module")
    return Source(spec, model=model)


def _import(target: str, attr: str, is_file: bool):
    try:
        if is_file:
            path = Path(target)
            mod_spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(mod_spec)
            sys.modules.setdefault(path.stem, module)
            mod_spec.loader.exec_module(module)
            return module
        return importlib.import_module(target)
    except ModuleNotFoundError as err:
        raise UsageError(
            f"cannot import {target!r}: ModuleNotFoundError: {err} (looked in the installed packages and the "
            f"current folder; for a Python file elsewhere, pass path/to/file.py:{attr})"
        ) from None
    except Exception as err:  # the user's module failed to import: say which and why, in one line
        raise UsageError(f"cannot import {target!r}: {type(err).__name__}: {err}") from None


_EXPORT_HINT = (
    "export a plain state dict where the model is built, e.g. torch.save(model.state_dict(), 'weights.pt') "
    "or safetensors.torch.save_file(model.state_dict(), 'weights.safetensors'), and analyse that"
)


def checkpoint_format(path: Path) -> str:
    """``"torch"`` (a ``torch.save`` zip archive or legacy file), ``"safetensors"``, or what the file is instead.

    Decided from the first bytes, whatever the file's name: an empty file, a zip archive without ``data.pkl``
    (not written by ``torch.save``), a truncated or damaged zip archive, a plain Python pickle, a text file.
    """
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(16)
    if size == 0:
        return "an empty file"
    if head.startswith(b"PK\x03\x04") or zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError, EOFError):
            return "a truncated or damaged zip archive"
        if any(name.rpartition("/")[2] == "data.pkl" for name in names):
            return "torch"
        return "a zip archive that torch.save did not write (no data.pkl)"
    if head[:4] == b"\x80\x02\x8a\x0a":  # pickle protocol 2, then the 10-byte magic number of torch.save
        return "torch"
    if len(head) > 8 and head[8:9] == b"{" and 2 <= int.from_bytes(head[:8], "little") <= size - 8:
        return "safetensors"  # 8-byte little-endian header length, then the JSON header
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a Python pickle that torch.save did not write"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "unrecognised binary data"
    return (
        "a text file"
        if all(c.isprintable() or c in "\t\r\n" for c in head.decode("utf-8"))
        else ("unrecognised binary data")
    )


def _state_dict_file(path: Path) -> Source:
    try:
        kind = checkpoint_format(path)
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror or first_line(err)}") from None
    if kind not in ("torch", "safetensors"):
        if "truncated" in kind:  # most likely an interrupted download or copy of a torch.save file
            raise UsageError(
                f"cannot read {path}: {kind}, not a readable PyTorch checkpoint (incomplete download?)"
            )
        raise UsageError(f"cannot read {path}: {kind}, not a PyTorch or safetensors checkpoint")
    try:
        if kind == "safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # Safe unpickling refused something. Never relay torch's advice to load the file unsafely.
        objects = sorted(set(re.findall(r"GLOBAL ([\w.]+)", str(err))))
        what = (
            f"holds non-tensor Python objects ({', '.join(objects[:4])}) that safe loading refuses"
            if objects
            else "holds content that safe loading refuses (non-tensor Python objects, or damage)"
        )
        raise UsageError(f"cannot read {path}: this PyTorch checkpoint {what}; {_EXPORT_HINT}") from None
    except OSError as err:
        raise UsageError(f"cannot read {path}: {type(err).__name__}: {first_line(err, 200)}") from None
    except Exception as err:
        detail = first_line(err, 200)
        detail = "" if "weights_only" in detail else f": {detail}"
        label = "PyTorch" if kind == "torch" else "safetensors"
        raise UsageError(
            f"cannot read {path}: damaged or truncated {label} checkpoint ({type(err).__name__}{detail})"
        ) from None
    state = unwrap_state_dict(state, str(path))
    if kind == "safetensors":
        # safetensors stores tensors sorted by name, so the network order is lost: compare numbers as numbers
        # (layer.2 before layer.10) to come closest to it. torch.save files keep their own order.
        state = dict(sorted(state.items(), key=lambda item: _natural_key(item[0])))
    return Source(str(path), state_dict=state)


def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _tensor_dict(value, nested: bool = True) -> dict | None:
    """``value`` as a flat state dict when its values are all tensors (or, with ``nested``, dicts of tensors one
    level down, keys joined with "."); else None."""
    if not isinstance(value, dict) or not value:
        return None
    flat = {}
    for key, item in value.items():
        if isinstance(item, torch.Tensor):
            flat[str(key)] = item
        elif nested and (inner := _tensor_dict(item, nested=False)) is not None:
            flat.update({f"{key}.{k}": v for k, v in inner.items()})
        else:
            return None
    return flat


def unwrap_state_dict(obj, where: str) -> dict:
    """The state dict of tensors in a loaded checkpoint: the object itself, the one under a well-known key, or
    the only dict of tensors among its top-level values. Raises UsageError saying what was found otherwise."""
    if not isinstance(obj, dict):
        raise UsageError(
            f"{where} does not hold a state dict of tensors (it holds a {type(obj).__name__}); {_LAYOUTS}"
        )
    if (flat := _tensor_dict(obj, nested=False)) is not None:
        return flat
    for key in WRAPPER_KEYS:
        inner = obj.get(key)
        if (flat := _tensor_dict(inner)) is not None:
            return flat
        if isinstance(inner, dict) and any(isinstance(v, torch.Tensor) for v in inner.values()):
            # a state dict with a few non-tensor entries (e.g. a module's `_extra_state`): those are ignored
            return {str(k): v for k, v in inner.items() if isinstance(v, torch.Tensor)}
    candidates = {str(k): flat for k, v in obj.items() if (flat := _tensor_dict(v)) is not None}
    if len(candidates) == 1:
        return next(iter(candidates.values()))
    if len(candidates) > 1:
        names = ", ".join(repr(k) for k in candidates)
        first = next(iter(candidates))
        raise UsageError(
            f"{where} holds several dicts of tensors ({names}); save the one to analyse on its own, "
            f"e.g. torch.save(ckpt[{first!r}], 'weights.pt'), and analyse that"
        )
    if any(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj  # a state dict with a few non-tensor entries; they are ignored
    keys = [repr(k) for k in list(obj)[:8]] + (["..."] if len(obj) > 8 else [])
    raise UsageError(
        f"{where} does not hold a state dict of tensors (top-level keys: {', '.join(keys) or 'none'}); {_LAYOUTS}"
    )


def _hf(name: str, local: bool) -> Source:
    try:
        import transformers
    except ImportError:
        raise UsageError(
            "loading Hugging Face models needs transformers: pip install 'modelbalance[hf]'"
        ) from None
    path = Path(name)
    try:
        if local and (path / "adapter_config.json").is_file():
            from peft import AutoPeftModel

            model = AutoPeftModel.from_pretrained(name)
        else:
            model = transformers.AutoModel.from_pretrained(name, local_files_only=local)
    except Exception as err:
        where = "local folder" if local else "Hugging Face model id"
        raise UsageError(f"cannot load {where} {name!r}: {first_line(err)}") from None
    return Source(name, model=model)


def load_source(source: str) -> Source:
    """Resolve SOURCE (see module docstring); raises UsageError with one clear line on failure."""
    path = Path(source)
    if path.is_file():
        if path.suffix in STATE_DICT_SUFFIXES + (".safetensors",):
            return _state_dict_file(path)
        raise UsageError(
            f"don't know how to read {source!r}: expected .pt/.pth/.bin/.ckpt/.safetensors, "
            "a model folder, module:factory or a Hugging Face model id"
        )
    if path.is_dir():
        if (path / "config.json").is_file() or (path / "adapter_config.json").is_file():
            return _hf(source, local=True)
        raise UsageError(f"folder {source!r} has no config.json (not a Hugging Face model folder)")
    if ":" in source and not source.startswith(("http:", "https:")):
        return _factory(source)
    if path.suffix in STATE_DICT_SUFFIXES + (".safetensors",) or source.startswith((".", "/", "~")):
        raise UsageError(f"no such file: {source}")
    return _hf(source, local=False)
