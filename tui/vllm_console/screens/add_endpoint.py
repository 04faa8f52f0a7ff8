"""The add-endpoint dialog: a server that runs elsewhere becomes a remote member of the fleet.

Three fields: the URL (http or https, a host, an optional port and path; a trailing /v1 is
dropped), an optional API key (a password field: never shown), an optional name (by default
the URL's host and port, made unique among the names the dialog was given). Each bad field
says why under itself; nothing is probed here: the member's pane does that once it is added.
`read_endpoint` is the dialog's logic without widgets.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from vllm_console.core.fleet.model import Member, Source, endpoint_name, slug, unique_name
from vllm_console.core.fleet.probe import member_url
from vllm_console.core.text import visible

FIELDS = ("url", "key", "name")


def default_name(url: str, taken: Iterable[str]) -> str:
    """host:port of a checked URL (as a name: `gpu-box-8000`), unique among `taken`."""
    return endpoint_name(url, taken)


def read_endpoint(
    url: str, key: str, name: str, taken: Collection[str]
) -> tuple[Member | None, dict[str, str]]:
    """The member the fields describe, or a message per bad field (keys: FIELDS)."""
    errors: dict[str, str] = {}
    base = ""
    try:
        base = member_url(url)
    except ValueError as exc:
        errors["url"] = str(exc)
    key = key.strip()
    if key and not (key.isascii() and key.isprintable() and " " not in key):
        errors["key"] = "a key is printable ASCII without spaces"
    name = name.strip()
    if name and slug(name) != name:
        errors["name"] = "letters, digits, '.', '_' and '-' only, at most 64"
    elif name in taken:
        errors["name"] = f"{name} is taken: {unique_name(name, taken)} is free"
    if errors:
        return None, errors
    chosen = name or default_name(base, taken)
    return Member(chosen, url=base, api_key=key or None, source=Source("console")), {}


class AddEndpointScreen(ModalScreen[Member | None]):
    """URL, key and name; dismisses with a remote `Member`, or None on cancel."""

    DEFAULT_CSS = Path(__file__).with_name("add_endpoint.tcss").read_text(encoding="utf-8")

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="add_endpoint.cancel", tooltip="Add nothing"),
        Binding(
            "ctrl+s",
            "add",
            "Add",
            id="add_endpoint.add",
            tooltip="Check the fields and add the endpoint to the fleet",
        ),
    ]

    def __init__(self, taken: Iterable[str] = ()) -> None:
        """`taken`: the names of the members already in the fleet."""
        super().__init__()
        self._taken = frozenset(taken)

    def compose(self) -> ComposeResult:
        with Vertical(id="endpoint-dialog"):
            yield Static("Add an endpoint", id="endpoint-title")
            yield Static(
                "A vLLM (or OpenAI-compatible) server that runs elsewhere: the console "
                "shows its health, models and load, and chats with it. It cannot stop it.",
                id="endpoint-note",
            )
            rows = (
                ("url", "URL", "http://gpu-box:8000", False),
                ("key", "API key", "none", True),
                ("name", "Name", "host-port", False),
            )
            for field, label, placeholder, password in rows:
                with Horizontal(classes="endpoint-row"):
                    yield Label(label, classes="endpoint-label")
                    yield Input(placeholder=placeholder, password=password, id=f"endpoint-{field}")
                yield Static("", id=f"endpoint-{field}-error", classes="endpoint-error")
            with Horizontal(id="endpoint-buttons"):
                yield Button("Cancel", id="endpoint-cancel")
                yield Button("Add", id="endpoint-add", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#endpoint-url", Input).focus()

    def _fields(self) -> tuple[str, str, str]:
        url, key, name = (self.query_one(f"#endpoint-{f}", Input).value for f in FIELDS)
        return url, key, name

    def _check(self, *, final: bool) -> Member | None:
        """Mark the bad fields; while typing, an empty URL is not yet an error."""
        url, key, name = self._fields()
        member, errors = read_endpoint(url, key, name, self._taken)
        if not final and not url.strip():
            errors.pop("url", None)
        for field in FIELDS:
            message = errors.get(field, "")
            shown = self.query_one(f"#endpoint-{field}-error", Static)
            shown.update(Content(visible(message)))  # messages quote what was typed
            shown.display = bool(message)
            self.query_one(f"#endpoint-{field}", Input).set_class(bool(message), "-invalid")
        placeholder = "host-port"
        if "url" not in errors and url.strip():
            placeholder = default_name(member_url(url), self._taken)
        self.query_one("#endpoint-name", Input).placeholder = placeholder
        if final and errors:
            self.query_one(f"#endpoint-{next(iter(errors))}", Input).focus()
        return member

    @on(Input.Changed)
    def _changed(self) -> None:
        self._check(final=False)

    @on(Input.Submitted)
    @on(Button.Pressed, "#endpoint-add")
    def action_add(self) -> None:
        member = self._check(final=True)
        if member is not None:
            self.dismiss(member)

    @on(Button.Pressed, "#endpoint-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
