"""Every module and every widget, screen or app class of the vllm_console package.

Tests that must cover each class with some trait (bindings, CSS) find them here, so a new
class cannot be left out by a hand-made list.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

from textual.dom import DOMNode

import vllm_console

# Importing `__main__` runs the console.
NOT_IMPORTED = frozenset({"vllm_console.__main__"})


def package_modules() -> list[ModuleType]:
    """Every module under vllm_console, imported."""
    names = [
        info.name
        for info in pkgutil.walk_packages(vllm_console.__path__, "vllm_console.")
        if info.name not in NOT_IMPORTED
    ]
    return [vllm_console, *(importlib.import_module(name) for name in sorted(names))]


def package_nodes() -> list[type[DOMNode]]:
    """Every DOMNode subclass (widgets, screens, the App) defined in vllm_console."""
    package_modules()
    found: list[type[DOMNode]] = []
    todo: list[type[DOMNode]] = [DOMNode]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub not in found and sub.__module__.startswith("vllm_console."):
                found.append(sub)
            todo.append(sub)
    return sorted(found, key=lambda cls: (cls.__module__, cls.__qualname__))


def classes_defining(attribute: str) -> list[type[DOMNode]]:
    """The package's node classes that set `attribute` themselves (not by inheritance)."""
    return [cls for cls in package_nodes() if attribute in vars(cls)]
