"""Block detection: which repeated building block (transformer layer, ResNet stage, FNO block) a module is in.

Example
-------
>>> import torch.nn as nn
>>> from modelbalance.balance import detect_blocks
>>> block = lambda: nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8))
>>> model = nn.Sequential(nn.Linear(4, 8), nn.Sequential(*[block() for _ in range(2)]), nn.Linear(8, 2))
>>> detect_blocks(model)
{'1.0': ['1.0'], '1.1': ['1.1']}

Rules of the automatic detection (the shallowest match along a module path wins):

- A *stack* is a container whose children carry parameters and repeat: the numbered children of a
  ``ModuleList`` / ``Sequential`` (``encoder.layer.3``, ``transformer.h.0``), or siblings named
  ``<stem><number>`` with at least two members (ResNet ``layer1`` ... ``layer4``). Repeating means: all of one
  class, and either every member has parameterised children of its own (a composite block) or all members have
  identical parameter shapes. That keeps ``Sequential(Linear(10, 64), ReLU(), Linear(64, 2))`` and an MLP's
  ``fcs`` list from counting as stacks.
- Each member of a stack is a block named by its path, so encoder and decoder stacks (``encoder.block.0`` vs
  ``decoder.block.0``) stay apart.
- Parallel stacks, numbered lists under one parent with the same indices (neuraloperator ``FNOBlocks``:
  ``convs.N``, ``fno_skips.N``, ``channel_mlp.N``, ...), form one block per index, named ``<parent>.N``.

Override with ``blocks=``: a regex searched in module paths (group 1 if it has one, else the whole match, is
the block name) or a callable ``path -> block name or None``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable

import torch.nn as nn

__all__ = ["BlockIndex", "detect_blocks"]

_NUMBERED_NAME = re.compile(r"^(.*\D)(\d+)$")
_DIGITS = re.compile(r"\d+")


def _has_params(module: nn.Module) -> bool:
    return next(module.parameters(), None) is not None


def _is_composite(module: nn.Module) -> bool:
    return any(_has_params(child) for child in module.children())


def _repeats(members: list[nn.Module]) -> bool:
    if len(members) < 2:  # one module is not a stack (e.g. Sequential(Linear, GELU))
        return False
    if len({type(m) for m in members}) != 1:
        return False
    if all(_is_composite(m) for m in members):
        return True
    return len({tuple(tuple(p.shape) for p in m.parameters()) for m in members}) == 1


def _wildcard(text: str) -> str:
    return _DIGITS.sub("*", text)


def _parent(path: str) -> str:
    return path.rpartition(".")[0]


class BlockIndex:
    """Maps module paths (and layer names below them) to block names and to their role within the block.

    ``role_of`` is the path with the block index replaced by ``*`` (``encoder.layer.*.attention.self.query``),
    the same for same-role layers of every block.

    >>> import torch.nn as nn
    >>> model = nn.Module()
    >>> model.layers = nn.ModuleList([nn.Linear(4, 4) for _ in range(3)])
    >>> index = BlockIndex(model)
    >>> index.block_of("layers.2"), index.role_of("layers.2"), index.block_of("head")
    ('layers.2', 'layers.*', None)
    """

    def __init__(self, model: nn.Module, blocks: str | Callable[[str], str | None] | None = None):
        if blocks is not None and not isinstance(blocks, str) and not callable(blocks):
            raise TypeError(f"blocks must be a regex string, a callable or None, got {type(blocks).__name__}")
        self._rule = re.compile(blocks) if isinstance(blocks, str) else blocks
        self._members: dict[str, tuple[str, str]] = {}  # member root path -> (block name, role of that root)
        self._model = model
        if blocks is None:
            self._detect(model)

    def _detect(self, model: nn.Module) -> None:
        numbered_stacks: dict[str, dict[str, dict[int, str]]] = defaultdict(
            dict
        )  # parent -> container -> members
        for path, module in model.named_modules():
            prefix = f"{path}." if path else ""
            children = [(name, child) for name, child in module.named_children() if _has_params(child)]
            if not children:
                continue
            if isinstance(module, (nn.ModuleList, nn.Sequential)) and all(
                n.isdigit() for n, _ in module.named_children()
            ):
                if _repeats([c for _, c in children]):
                    numbered_stacks[_parent(path) if path else None][path] = {
                        int(n): prefix + n for n, _ in children
                    }
                continue
            families: dict[str, list[tuple[str, nn.Module]]] = defaultdict(list)
            for name, child in children:
                match = _NUMBERED_NAME.match(name)
                if match:
                    families[match.group(1)].append((name, child))
            for stem, members in families.items():
                if len(members) >= 2 and _repeats([c for _, c in members]):
                    for name, _ in members:
                        self._members.setdefault(prefix + name, (prefix + name, prefix + stem + "*"))
        for parent, stacks in numbered_stacks.items():
            by_indices: dict[tuple[int, ...], list[str]] = defaultdict(list)
            for container, members in stacks.items():
                by_indices[tuple(sorted(members))].append(container)
            for indices, containers in by_indices.items():
                # Equal-length stacks under one non-root module are one block per index (FNO's convs.N,
                # fno_skips.N, channel_mlp.N under fno_blocks). At the model's root they are separate stages
                # (a UNet's encoders.N and decoders.N run at mirrored depths), so they stay apart.
                parallel = len(containers) >= 2 and bool(parent)
                for container in containers:
                    for index in indices:
                        member = stacks[container][index]
                        name = (f"{parent}.{index}" if parent else str(index)) if parallel else member
                        self._members.setdefault(member, (name, f"{container}.*" if container else "*"))

    def block_of(self, path: str) -> str | None:
        """The block that module path (or layer name) ``path`` belongs to, or None."""
        found = self._find(path)
        return None if found is None else found[0]

    def role_of(self, path: str) -> str:
        """``path`` with its block index replaced by ``*``; ``path`` itself outside blocks."""
        found = self._find(path)
        return path if found is None else found[1]

    def _find(self, path: str) -> tuple[str, str] | None:
        if self._rule is None:
            parts = path.split(".")
            for i in range(1, len(parts) + 1):
                root = ".".join(parts[:i])
                if root in self._members:
                    name, role = self._members[root]
                    return name, role + path[len(root) :]
            return None
        if callable(self._rule) and not isinstance(self._rule, re.Pattern):
            name = self._rule(path)
            if name is None:
                return None
            if not isinstance(name, str):
                raise TypeError(
                    f"blocks callable must return a str or None, got {type(name).__name__} for {path!r}"
                )
            role = _wildcard(name) + path[len(name) :] if path.startswith(name) else path
            return name, role
        match = self._rule.search(path)
        if match is None:
            return None
        group = 1 if self._rule.groups else 0
        start, end = match.span(group)
        return match.group(group), path[:start] + _wildcard(path[start:end]) + path[end:]

    def blocks(self) -> dict[str, list[str]]:
        """Block name -> the outermost module paths it consists of, in module order."""
        out: dict[str, list[str]] = {}
        for path, _ in self._model.named_modules():
            if not path:
                continue
            name = self.block_of(path)
            if name is not None and self.block_of(_parent(path)) != name:
                out.setdefault(name, []).append(path)
        return out


def detect_blocks(
    model: nn.Module, blocks: str | Callable[[str], str | None] | None = None
) -> dict[str, list[str]]:
    """Blocks of ``model``: block name -> its outermost module paths (rules in the module docstring).

    >>> import torch.nn as nn
    >>> model = nn.Module()
    >>> model.encoder = nn.ModuleList([nn.Linear(4, 4) for _ in range(2)])
    >>> detect_blocks(model, blocks=r"encoder\\.\\d+")
    {'encoder.0': ['encoder.0'], 'encoder.1': ['encoder.1']}
    """
    return BlockIndex(model, blocks).blocks()
