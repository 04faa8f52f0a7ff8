"""The help screen: what the console does and every key, read from the classes' bindings.

No key is listed by hand. The App's bindings and those of every widget and dialog class
under `vllm_console.widgets` and `vllm_console.screens` are gathered when the screen opens,
one section per pane or dialog; each row is a binding's key, its description and its
tooltip (the long explanation lives in the `Binding` itself). A class added with bindings
shows up here without being named anywhere.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from rich.table import Table
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.dom import DOMNode
from textual.screen import ModalScreen
from textual.widgets import Static

# Where the classes with keys live: imported when the help opens (the dialogs' modules are
# otherwise loaded on first use only).
KEY_PACKAGES = ("vllm_console.widgets", "vllm_console.screens")

# Section titles, in the order shown: a package (a pane's folder) or a module (a dialog).
# A class elsewhere still gets a section, titled after its module, after these.
APP_MODULE = "vllm_console.app"
SECTIONS = {
    APP_MODULE: "Main screen",
    "vllm_console.widgets.models": "Model table",
    "vllm_console.widgets.server": "Server log",
    "vllm_console.widgets.chat": "Chat",
    "vllm_console.widgets.metrics": "Metrics",
    "vllm_console.widgets.gpu": "GPU strip",
    "vllm_console.screens.launch": "Launch dialog",
    "vllm_console.screens.gpu_holders": "GPU memory held by others",
    "vllm_console.screens.download": "Download dialog",
    "vllm_console.screens.runs": "Run history",
    "vllm_console.screens.leftovers": "Servers left from earlier runs",
    "vllm_console.screens.quit": "Quit dialog",
    "vllm_console.screens.ask": "Stop all, save the fleet",
    "vllm_console.screens.help": "This screen",
}

PALETTE = "Palette"
PALETTE_DETAIL = "The command palette: type a model's name to jump to it"

INTRO = (
    "The console lists the models it finds on disk: the Hugging Face and ModelScope "
    "caches and your model folders. Rows appear at once; sizes, config and problems fill "
    "in as they are read. A pane's keys work while it has the focus; ^ means ctrl."
)

MOUSE = "Click a column header to sort by it (click again to reverse)."


@dataclass(frozen=True)
class KeyHelp:
    """One row: the key as the footer shows it, its description and the long explanation."""

    key: str
    description: str
    detail: str = ""


@dataclass(frozen=True)
class HelpSection:
    """The keys of one pane or dialog."""

    title: str
    keys: tuple[KeyHelp, ...]


def package_modules(package_name: str) -> Iterator[ModuleType]:
    """The package's modules, imported, in name order."""
    package = importlib.import_module(package_name)
    yield package
    for info in sorted(
        pkgutil.walk_packages(package.__path__, f"{package_name}."), key=lambda info: info.name
    ):
        yield importlib.import_module(info.name)


def binding_owners(app: App[Any]) -> list[type[DOMNode]]:
    """The App's class and every widget or dialog class that declares BINDINGS itself."""
    owners: list[type[DOMNode]] = [
        cls
        for cls in type(app).__mro__
        if issubclass(cls, App) and "BINDINGS" in vars(cls) and cls.__module__ in SECTIONS
    ]
    for package in KEY_PACKAGES:
        for module in package_modules(package):
            owners.extend(
                value
                for value in vars(module).values()
                if isinstance(value, type)
                and issubclass(value, DOMNode)
                and value.__module__ == module.__name__
                and "BINDINGS" in vars(value)
            )
    return owners


def section_key(module: str) -> str:
    """The SECTIONS entry a module belongs to: itself, else its package, else itself."""
    if module in SECTIONS:
        return module
    package = module.rpartition(".")[0]
    return package if package in SECTIONS else module


def section_title(key: str) -> str:
    return SECTIONS.get(key) or key.rpartition(".")[2].replace("_", " ").capitalize()


def help_sections(app: App[Any]) -> list[HelpSection]:
    """Every binding of the App, its widgets and its dialogs, one section per pane/dialog."""
    rows: dict[str, list[KeyHelp]] = {}
    for owner in binding_owners(app):
        section = rows.setdefault(section_key(owner.__module__), [])
        for binding in Binding.make_bindings(vars(owner)["BINDINGS"]):
            key = app.get_key_display(binding)
            section.append(KeyHelp(key, binding.description, binding.tooltip))
    if app.ENABLE_COMMAND_PALETTE:  # Textual binds it, not a BINDINGS list of ours
        palette = Binding(app.COMMAND_PALETTE_BINDING, "command_palette", PALETTE)
        main = rows.setdefault(APP_MODULE, [])
        main.append(KeyHelp(app.get_key_display(palette), PALETTE, PALETTE_DETAIL))
    order = {key: index for index, key in enumerate(SECTIONS)}
    keys = sorted(rows, key=lambda key: (order.get(key, len(order)), key))
    return [HelpSection(section_title(key), tuple(rows[key])) for key in keys if rows[key]]


def key_table(keys: Sequence[KeyHelp], key_width: int, description_width: int) -> Table:
    """Key, description and explanation; a long explanation wraps within its column."""
    table = Table.grid(padding=(0, 2, 0, 0))
    table.add_column(width=key_width, style="bold", no_wrap=True)
    table.add_column(width=description_width, no_wrap=True)
    table.add_column(ratio=1)
    for key in keys:
        table.add_row(key.key, key.description, key.detail)
    return table


class HelpScreen(ModalScreen[None]):
    """A modal listing the keys; escape, ? or q closes it."""

    DEFAULT_CSS = Path(__file__).with_name("help.tcss").read_text(encoding="utf-8")

    BINDINGS = [
        Binding("escape", "close", "Close", id="help.close", tooltip="Back to the console"),
        Binding(
            "question_mark",
            "close",
            "Close",
            show=False,
            id="help.close_question",
            tooltip="Back to the console",
        ),
        Binding(
            "q",
            "close",
            "Close",
            show=False,
            id="help.close_q",
            tooltip="Back to the console",
        ),
    ]

    def __init__(self, sections: Sequence[HelpSection]) -> None:
        super().__init__()
        self.sections = tuple(sections)

    def compose(self) -> ComposeResult:
        keys = [key for section in self.sections for key in section.keys]
        key_width = max((len(key.key) for key in keys), default=4)
        description_width = max((len(key.description) for key in keys), default=8)
        with Vertical(id="help-dialog"):
            yield Static("vLLM console: keys", id="help-title")
            with VerticalScroll(id="help-body"):
                yield Static(INTRO, classes="help-text")
                for section in self.sections:
                    yield Static(section.title, classes="help-section")
                    table = key_table(section.keys, key_width, description_width)
                    yield Static(table, classes="help-keys")
                yield Static(MOUSE, classes="help-text")
            yield Static("escape closes this screen", id="help-hint")

    def action_close(self) -> None:
        self.dismiss(None)
