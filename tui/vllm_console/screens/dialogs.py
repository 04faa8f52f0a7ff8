"""The dialogs the server controller opens, built here: controllers sit below screens in the
layers, so the App hands the controller this object instead of the controller importing
screens. Each dialog module is imported when first opened, not at start-up."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# Annotations only: the App imports this module before its first frame.
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from pathlib import Path

    from textual.app import App
    from textual.screen import Screen

    from vllm_console.config import Settings
    from vllm_console.core.catalog.entry import ModelEntry
    from vllm_console.core.fleet.model import FleetContext, Member
    from vllm_console.core.gpu.nvml import GpuSnapshot
    from vllm_console.core.gpu.owners import Holder
    from vllm_console.core.serve.leftovers import Leftover
    from vllm_console.core.serve.runs import RunInfo
    from vllm_console.core.serve.spec import LaunchRequest, LaunchSpec
    from vllm_console.screens.quit import QuitChoice


class Dialogs:
    """Builds each dialog of a launch's life; see `controllers.server.DialogMaker`."""

    def launch(
        self,
        settings: Settings,
        *,
        key: str,
        model_id: str,
        path: str,
        saved: LaunchSpec | None,
        fix: tuple[str, object] | None,
        entry: ModelEntry | None,
        gpus: Callable[[], GpuSnapshot | None],
        kill: Callable[[list[int]], None] | None,
        fleet: FleetContext,
        tokenizer: str | None = None,
    ) -> Screen[LaunchRequest | None]:
        from vllm_console.screens.launch import LaunchScreen
        from vllm_console.screens.launch_form import apply_fix, initial_spec

        spec = initial_spec(settings, path, model_id, saved, tokenizer)
        if fix is not None:
            spec = apply_fix(spec, *fix)
        return LaunchScreen(
            settings,
            model_key=key,
            model_id=model_id,
            spec=spec,
            changed=fix[0] if fix else None,
            entry=entry,
            gpus=gpus,
            kill=kill,
            fleet=fleet,
        )

    def quit(self, names: Sequence[str]) -> Screen[QuitChoice | None]:
        from vllm_console.screens.quit import QuitScreen

        return QuitScreen(names)

    def confirm(self, title: str, text: str, yes: str) -> Screen[bool]:
        from vllm_console.screens.ask import ConfirmScreen

        return ConfirmScreen(title, text, yes)

    def fleet_path(self, cwd: Path) -> Screen[Path | None]:
        from vllm_console.screens.ask import FleetPathScreen

        return FleetPathScreen(cwd)

    def add_endpoint(self, taken: Iterable[str]) -> Screen[Member | None]:
        from vllm_console.screens.add_endpoint import AddEndpointScreen

        return AddEndpointScreen(taken)

    def leftovers(
        self, settings: Settings, found: list[Leftover], attach: Callable[[RunInfo], None]
    ) -> Screen[None]:
        from vllm_console.screens.leftovers import LeftoversScreen

        return LeftoversScreen(settings, found, attach)

    def ask_to_kill(
        self,
        app: App[Any],
        title: str,
        holders: Sequence[Holder],
        answer: Callable[[list[int]], None],
    ) -> None:
        from vllm_console.screens.gpu_holders import ask_to_kill

        ask_to_kill(app, title, holders, answer)
