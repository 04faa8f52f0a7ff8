"""Fleet files in the console: open one (`vllm-console --fleet FILE`) and save the current
servers to one.

Opening: the file was read (and every problem said) by the command line before the console
started; here its remote members become rows, and its local ones are launched, each as soon
as no earlier member that shares one of its GPUs is still starting (two vLLMs profiling one
GPU at once misjudge its free memory; a member without `gpus` may use any GPU, so it waits
for all). Saving: every member whose launch is known is written with
`core.fleet.file.save_fleet`: launched here, remote, or attached to from an earlier run whose
record keeps its launch's settings (secrets out, as the file leaves them out anyway); one
attached to a run recorded before records kept them is named and left out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from vllm_console.core.fleet.model import Member, unique_name
from vllm_console.core.serve.diagnose import BOOTING
from vllm_console.core.text import visible

# Annotations only: the App imports the controllers before its first frame.
if TYPE_CHECKING:
    from vllm_console.app import VllmConsoleApp
    from vllm_console.controllers.server import DialogMaker, ServerController
    from vllm_console.core.serve.install import VllmCommand
    from vllm_console.core.serve.spec import LaunchRequest
    from vllm_console.widgets.server.pane import ServerPane

WAIT_STEP = 0.25  # seconds between looks at the members a launch waits for


def share_gpus(a: tuple[int, ...] | None, b: tuple[int, ...] | None) -> bool:
    """Whether two members may use one GPU (None: whatever GPUs it inherits, so any)."""
    return a is None or b is None or bool(set(a) & set(b))


def launch_request(member: Member, vllm: VllmCommand) -> LaunchRequest:
    """What the launch dialog would hand over for `member` (SpecError for bad extra args)."""
    from vllm_console.core.serve.spec import LaunchRequest, serve_args, take_api_key

    assert member.spec is not None
    spec = take_api_key(member.spec)
    argv = tuple(vllm.argv(serve_args(spec)))
    model_id = spec.served_model_name or spec.model
    return LaunchRequest(spec.model, model_id, spec.model, spec, argv, name=member.name)


class FleetFiles:
    """Open and save fleet files for `servers`' fleet."""

    def __init__(
        self, app: VllmConsoleApp, dialogs: DialogMaker, servers: ServerController
    ) -> None:
        self._app = app
        self._dialogs = dialogs
        self._servers = servers

    # -- open ------------------------------------------------------------------------------------

    def open(self, members: Sequence[Member]) -> None:
        """Add `members` to the fleet: remote ones at once, local ones launched in turn."""
        self._app.run_worker(
            self._open(tuple(members)), name="open_fleet", group="fleet-file", exit_on_error=False
        )

    async def _open(self, members: tuple[Member, ...]) -> None:
        from vllm_console.core.serve.install import find_vllm

        app = self._app
        await app.panes_ready.wait()
        for member in members:
            if member.url is not None:
                await app.fleet.add_remote(replace(member, name=self._free(member.name)))
        local = [member for member in members if member.spec is not None]
        if not local:
            return
        vllm = await asyncio.to_thread(find_vllm, app.settings.vllm_command)
        if not vllm.found:
            said = "; ".join(vllm.problems)
            app.notify(visible(said), title="No server launched", severity="error", markup=False)
            return
        started: list[tuple[ServerPane, tuple[int, ...] | None]] = []
        for member in local:
            await self._after(member.gpus, started)
            name = await self._launch(replace(member, name=self._free(member.name)), vllm)
            pane = app.fleet.pane(name) if name is not None else None
            if pane is not None:
                started.append((pane, member.gpus))

    def _free(self, name: str) -> str:
        """The member's name, or a free variant of it if the console has one so named."""
        return unique_name(name, self._app.fleet.names)

    async def _after(
        self, gpus: tuple[int, ...] | None, started: list[tuple[ServerPane, tuple[int, ...] | None]]
    ) -> None:
        """Until no member started before, on a GPU this one may use, is still starting."""
        while any(p.state.phase in BOOTING for p, g in started if share_gpus(g, gpus)):
            await asyncio.sleep(WAIT_STEP)

    async def _launch(self, member: Member, vllm: VllmCommand) -> str | None:
        from vllm_console.core.serve.spec import SpecError

        try:
            request = launch_request(member, vllm)
        except SpecError as exc:
            said = visible(f"{member.name} ({member.source}): {exc}")
            self._app.notify(said, title="Not launched", severity="error", markup=False)
            return None
        return await self._servers.launch(request)

    # -- save ------------------------------------------------------------------------------------

    def save(self) -> None:
        """Ask where, then write every member whose launch is known."""
        screen = self._dialogs.fleet_path(self._app.settings.cwd)
        self._app.push_screen(screen, self._save_to)

    def members(self) -> tuple[list[Member], list[str]]:
        """The members to save, and the names of those left out (attached to a run recorded
        before runs kept their launch's settings: settings unknown)."""
        fleet = self._app.fleet
        saved: list[Member] = []
        left: list[str] = []
        for name in fleet.names:
            remote = fleet.remotes.get(name)
            pane = fleet.pane(name)
            request = pane.state.request if pane is not None else None
            run = pane.attached if pane is not None else None
            if remote is not None:
                saved.append(remote)
            elif request is not None:
                saved.append(Member(name, spec=request.spec))
            elif run is not None and run.spec is not None:
                saved.append(Member(name, spec=run.spec))  # as its run record keeps it
            else:
                left.append(name)
        return saved, left

    def _save_to(self, path: Path | None) -> None:
        if path is not None:
            saved, left = self.members()
            self._app.run_worker(
                self._write(path, saved, left),
                name="save_fleet",
                group="fleet-file",
                exit_on_error=False,
            )

    async def _write(self, path: Path, members: list[Member], left: list[str]) -> None:
        from vllm_console.core.files import reason
        from vllm_console.core.fleet.file import (
            FleetFileError,
            save_fleet,
        )

        app = self._app
        if not members:
            app.notify("No server to save: launch one first.", severity="warning")
            return
        try:
            await asyncio.to_thread(save_fleet, path, members, app.settings)
        except FleetFileError as exc:
            said = visible("; ".join(exc.problems))
            app.notify(said, title="Fleet not saved", severity="error", markup=False)
            return
        except OSError as exc:
            said = visible(f"cannot write {path}: {reason(exc)}")
            app.notify(said, title="Fleet not saved", severity="error", markup=False)
            return
        count = f"{len(members)} server{'' if len(members) == 1 else 's'}"
        note = f"; left out (attached, settings unknown): {', '.join(left)}" if left else ""
        app.notify(visible(f"Saved {count} to {path}{note}"), markup=False)
