"""Name -> factory registries for the experiment runner's plug-ins: tasks, models and methods.

A plug-in registers itself with a decorator; the runner only ever looks names up, so a new task, model or method
never touches the runner's core::

    from modelbalance.experiments.registry import TASKS

    @TASKS.register("my_task")
    def build_my_task(**params):
        ...

The built-in plug-ins are imported lazily on the first look-up (:func:`load_builtins`), and so are third-party
ones advertised under the ``modelbalance.experiments`` entry-point group.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

_BUILTIN_MODULES = (
    "modelbalance.experiments.tasks.pde",
    "modelbalance.experiments.tasks.toy",
    "modelbalance.experiments.tasks.text",
    "modelbalance.experiments.zoo",
    "modelbalance.experiments.methods",
)
_ENTRY_POINT_GROUP = "modelbalance.experiments"
_builtins_loaded = False


class Registry:
    """A named collection of factories, filled by the ``register`` decorator.

    Examples
    --------
    >>> colours = Registry("colour")
    >>> @colours.register("red")
    ... def make_red():
    ...     return "#f00"
    >>> colours.get("red")()
    '#f00'
    >>> colours.names()
    ['red']
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._factories: dict[str, Callable[..., Any]] = {}
        self._help: dict[str, str] = {}

    def register(self, name: str, *, help: str | None = None) -> Callable[[Callable], Callable]:
        """Decorator registering ``factory`` under ``name``; a second registration of the name is an error."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")

        def decorate(factory: Callable) -> Callable:
            existing = self._factories.get(name)
            if existing is not None and existing is not factory:
                raise ValueError(f"{self.kind} {name!r} is already registered (by {existing.__module__})")
            self._factories[name] = factory
            doc = (factory.__doc__ or "").strip().splitlines()
            self._help[name] = help if help is not None else (doc[0] if doc else "")
            return factory

        return decorate

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests and interactive sessions use this to clean up)."""
        self._factories.pop(name, None)
        self._help.pop(name, None)

    def get(self, name: str) -> Callable[..., Any]:
        """The factory registered under ``name``; a ValueError naming the known ones otherwise."""
        load_builtins()
        try:
            return self._factories[name]
        except KeyError:
            raise ValueError(self._unknown_message(name)) from None

    def __contains__(self, name: object) -> bool:
        load_builtins()
        return name in self._factories

    def names(self) -> list[str]:
        """Registered names, sorted."""
        load_builtins()
        return sorted(self._factories)

    def describe(self) -> dict[str, str]:
        """Name -> one-line help, for ``--help`` listings."""
        load_builtins()
        return {name: self._help[name] for name in sorted(self._factories)}

    def _unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(str(name), self._factories, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown {self.kind} {name!r}{hint}; known: {', '.join(sorted(self._factories))}"


_OPTION_FLAGS = {"task": "--task-param", "model": "--model-param", "method": "--method-param"}


def unknown_option(kind: str, name: str, option: str, known: list[str]) -> ValueError:
    """The one-line error for an option a task, model or method does not take, naming the ones it does."""
    close = difflib.get_close_matches(option, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ValueError(
        f"{kind} {name!r} has no option {option!r}{hint}; its options ({_OPTION_FLAGS[kind]}): {', '.join(known)}"
    )


TASKS = Registry("task")
MODELS = Registry("model")
METHODS = Registry("method")


def load_builtins() -> None:
    """Import the built-in plug-in modules and the installed entry points (once)."""
    global _builtins_loaded
    if _builtins_loaded:
        return
    _builtins_loaded = True  # set first: the imported modules call back into the registries
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)
    for entry_point in importlib.metadata.entry_points(group=_ENTRY_POINT_GROUP):
        entry_point.load()


def load_plugin(spec: str) -> None:
    """Import a user's plug-in: a module name (``my_pkg.tasks``) or a path to a ``.py`` file.

    The module registers its tasks, models or methods on import.

    Examples
    --------
    >>> load_plugin("modelbalance.experiments.tasks.toy")
    """
    path = Path(spec)
    if spec.endswith(".py"):
        if not path.is_file():
            raise FileNotFoundError(f"plug-in file not found: {spec}")
        module_name = f"modelbalance_plugin_{path.stem}"
        module_spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_name] = module
        module_spec.loader.exec_module(module)
        return
    try:
        importlib.import_module(spec)
    except ModuleNotFoundError as err:
        raise ValueError(f"cannot import plug-in module {spec!r}: {err}") from None
