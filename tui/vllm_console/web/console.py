"""The console as one browser session runs it: `python -m vllm_console.web.console`.

Started by the web server (`relay`) with Textual's web driver. Two ways out differ from the
terminal's, and neither asks anything, for nobody may be there to answer:

- the tab closed (the driver's "quit"): every server is left running, exactly as the quit
  dialog's "leave"; the next browser session attaches to them without asking;
- SIGTERM (the web server stopping, on Ctrl-C): as the quit dialog's "stop", or "leave"
  when `vllm-console web --keep-servers` said so.

Quitting from inside (q) asks as in the terminal. The servers' runs left running by a
closed tab are appended to the file the web server names (`LEFT_FILE_ENV`), so that its
own stop can stop them when no session is open.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from textual import messages, on

import vllm_console.app
from vllm_console.app import VllmConsoleApp
from vllm_console.config import Settings, settings_from_process
from vllm_console.web.relay import ENV_FILE_ENV, KEEP_ENV, LEFT_FILE_ENV

if TYPE_CHECKING:
    from rich.console import RenderableType

    from vllm_console.core.catalog.port import Catalog


class WebConsoleApp(VllmConsoleApp):
    """The console behind a browser tab."""

    # Textual reads CSS_PATH beside the class that names it: the App's, not this module.
    CSS_PATH = str(Path(vllm_console.app.__file__).with_name("app.tcss"))

    def __init__(
        self,
        settings: Settings,
        *,
        keep_servers: bool = False,
        left_file: Path | None = None,
        catalog: Catalog | None = None,
    ) -> None:
        """`catalog`: the model list's source (None: the disk's, as in the terminal)."""
        super().__init__(settings, catalog=catalog)
        self._keep_servers = keep_servers
        self._left_file = left_file
        self._exit_decided = False  # our own exit(): let Textual close
        self._ending = False

    def on_mount(self) -> None:
        # Replaces the web driver's SIGTERM handler, which would just exit.
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, self._stop_requested)
        self.call_after_refresh(self._find_leftovers)

    def _find_leftovers(self) -> None:
        self.servers.leaving.find_leftovers(attach_ours=True)

    def exit(
        self, result: None = None, return_code: int = 0, message: RenderableType | None = None
    ) -> None:
        self._exit_decided = True
        super().exit(result, return_code, message)

    @on(messages.ExitApp)
    def _exit_asked(self, message: messages.ExitApp) -> None:
        if self._exit_decided:
            return
        message.prevent_default()  # the tab closed: leave the servers first
        self._end(stop=False)

    def _stop_requested(self) -> None:
        self._end(stop=not self._keep_servers)

    def _end(self, *, stop: bool) -> None:
        if self._ending:
            return
        self._ending = True
        self.run_worker(self._end_flow(stop), name="web_end", group="quit", exit_on_error=False)

    async def _end_flow(self, stop: bool) -> None:
        leaving = self.servers.leaving
        if stop:
            await leaving.stop_all()
            return
        launched = {p.pid for p in self.servers.running() if p.attached is None and p.pid}
        if launched and self._left_file is not None:
            await asyncio.to_thread(self._record_left, launched)
        leaving.leave_all()

    def _record_left(self, pids: set[int]) -> None:
        from vllm_console.core.serve.runs import RunArchive

        assert self._left_file is not None
        runs = RunArchive(self.settings.runs_dir).leftovers()  # still "running": not yet left
        ids = [run.id for run in runs if run.pid in pids]
        with contextlib.suppress(OSError), self._left_file.open("a", encoding="utf-8") as out:
            out.writelines(f"{run_id}\n" for run_id in ids)


def main() -> int:
    env_file = os.environ.get(ENV_FILE_ENV)
    settings = settings_from_process(env_file=Path(env_file) if env_file else None)
    left = os.environ.get(LEFT_FILE_ENV)
    app = WebConsoleApp(
        settings,
        keep_servers=os.environ.get(KEEP_ENV) == "1",
        left_file=Path(left) if left else None,
    )
    app.run()
    return app.return_code or 0


if __name__ == "__main__":
    raise SystemExit(main())
