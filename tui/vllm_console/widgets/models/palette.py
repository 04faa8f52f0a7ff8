"""Command palette entries that jump to a model in the browser (type a model's name)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from vllm_console.core.catalog.entry import ModelEntry
from vllm_console.core.text import visible
from vllm_console.messages import JumpToModel


def literal(text: str) -> str:
    """Markup that shows `text` as it is, control characters made visible.

    The palette reads its prompts and help as markup, and a model's id is a folder's name:
    `[bold red]x[/]` or `[$accent]` must show as typed. Textual's own `escape` leaves
    `[$accent]` and upper-case tags alone; a backslash before every '[' leaves none.
    """
    return visible(text).replace("[", "\\[")


class ModelCommands(Provider):
    """One hit per model the browser lists; choosing it selects the model."""

    def _entries(self) -> tuple[ModelEntry, ...]:
        entries: Callable[[], tuple[ModelEntry, ...]] | None = getattr(
            self.app, "palette_entries", None
        )
        return entries() if entries is not None else ()

    def _jump(self, entry: ModelEntry) -> None:
        self.app.post_message(JumpToModel(entry.key))

    @staticmethod
    def _help(entry: ModelEntry) -> str:
        return literal(f"{entry.source} · {entry.path}")

    async def discover(self) -> Hits:
        for entry in self._entries():
            yield DiscoveryHit(
                literal(f"Model: {entry.id}"), partial(self._jump, entry), help=self._help(entry)
            )

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for entry in self._entries():
            text = literal(f"Model: {entry.id}")
            score = matcher.match(text)
            if score > 0:
                yield Hit(
                    score,
                    matcher.highlight(text),
                    partial(self._jump, entry),
                    help=self._help(entry),
                )
