"""Remote members: servers something else runs, watched and chatted with, never stopped.

They join the fleet three ways: a fleet file's `url:` entries (`fleet_file.py`), an endpoint
typed in the console (the add-endpoint dialog), and the endpoint the settings name
(`VLLM_BASE_URL`, when the user set it: the default is only where a local launch would
listen). Each becomes a row of the fleet table and a `RemotePane` that probes it; one that
stops answering is marked down, never removed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

# Annotations only: the App imports the controllers before its first frame.
if TYPE_CHECKING:
    from vllm_console.app import VllmConsoleApp
    from vllm_console.controllers.server import DialogMaker
    from vllm_console.core.fleet.model import Member

BASE_URL_KEY = "VLLM_BASE_URL"


class Remotes:
    """Adding remote members to `app`'s fleet."""

    def __init__(self, app: VllmConsoleApp, dialogs: DialogMaker) -> None:
        self._app = app
        self._dialogs = dialogs

    def add_endpoint(self) -> None:
        """Ask for a URL (and a key, a name); the answer joins the fleet, selected."""
        self._app.run_worker(
            self._ask(), name="add_endpoint", group="add-endpoint", exit_on_error=False
        )

    async def _ask(self) -> None:
        app = self._app
        member = await app.push_screen_wait(self._dialogs.add_endpoint(app.fleet.names))
        if member is not None:
            await self.add(member)

    async def add(self, member: Member) -> None:
        app = self._app
        await app.fleet.add_remote(member)
        app.fleet.select(member.name)
        app.show_tab("tab-server")

    def base_url_member(self) -> Member | None:
        """The settings' endpoint as a member, when the user named one."""
        from vllm_console.core.fleet.model import Member, Source, endpoint_name
        from vllm_console.core.fleet.probe import member_url

        settings = self._app.settings
        origin = settings.origin(BASE_URL_KEY)
        if origin == "default":
            return None
        try:
            url = member_url(settings.base_url)
        except ValueError:
            return None  # the chat pane says what is wrong with it
        name = endpoint_name(url, self._app.fleet.names)
        return Member(name, url=url, api_key=settings.api_key, source=Source(BASE_URL_KEY))

    async def add_base_url(self) -> None:
        member = self.base_url_member()
        if member is not None:
            await self._app.fleet.add_remote(member)
