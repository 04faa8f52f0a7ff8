"""Run a fleet headless: each local member a `ServerSession`, remote members probed once.

`plan` turns members into launches before anything starts: each model name resolved as
`serve` resolves it, vLLM found once, every port checked; what cannot start is a problem, and
one problem means nothing starts. `Fleet.run` then starts the launches and hands each event
to the caller with its launch; `stop_all` stops every server through its own session
(SIGTERM, the grace period, SIGKILL of its group). Printing is the command's.

Members whose GPUs overlap start one after the other, the next once the one before is ready
or has failed, because vLLM measures the free memory when it starts and would count a
neighbour's half-loaded weights as taken, or miss them. A member without `gpus` may use any
GPU it inherits, so it overlaps every other member.

Every spawn happens on the event loop's thread (the tasks of one TaskGroup, never a worker
thread): the servers of `up` are not detachable, so their parent-death signal fires when the
thread that forked them exits, and that thread lives exactly as long as `up` does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from vllm_console.config import Settings
from vllm_console.core.catalog.resolve import Rule, resolve
from vllm_console.core.fleet.model import Member
from vllm_console.core.serve.install import VllmCommand, find_vllm
from vllm_console.core.serve.process import health_url
from vllm_console.core.serve.proctable import port_holders, port_is_free
from vllm_console.core.serve.session import ServerSession, SessionEnded, SessionEvent
from vllm_console.core.serve.spec import LaunchSpec, SpecError, serve_args, take_api_key
from vllm_console.core.serve.supervisor import Ready

PROBE_TIMEOUT = 3.0  # seconds for a remote member's one probe


def api_url(host: str, port: int) -> str:
    """The base URL clients use (with /v1), reached as `/health` is: a wildcard listen
    address through loopback, an IPv6 address in brackets."""
    return health_url(host, port).removesuffix("/health") + "/v1"


@dataclass(frozen=True)
class Launch:
    """A local member ready to start: its spec with the model resolved, the exact argv."""

    member: Member
    model: str  # as the member names it (the spec's is what it resolved to)
    spec: LaunchSpec
    argv: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.member.name

    @property
    def url(self) -> str:
        return api_url(self.spec.host, self.spec.port)


@dataclass(frozen=True)
class Plan:
    """What `up` will do. `notes` say how each name resolved and which vLLM runs (for the
    log); `problems` are why nothing may start, each naming the member and where it came from."""

    launches: tuple[Launch, ...] = ()
    remotes: tuple[Member, ...] = ()
    vllm: VllmCommand | None = None
    notes: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()


def plan(settings: Settings, members: Sequence[Member]) -> Plan:
    """Resolve, find vLLM and check ports for every local member; nothing starts here."""
    local = [m for m in members if m.spec is not None]
    remotes = tuple(m for m in members if m.url is not None)
    if not local:
        return Plan(remotes=remotes)
    vllm = find_vllm(settings.vllm_command)
    if not vllm.found:
        return Plan(remotes=remotes, vllm=vllm, problems=vllm.problems)
    notes = [f"vLLM {vllm.version or '?'} ({vllm.distribution or '?'}) from {vllm.how}"]
    problems: list[str] = []
    launches: list[Launch] = []
    ports: dict[int, str] = {}
    for member in local:
        launch = _launch(settings, member, vllm, notes, problems)
        if launch is None:
            continue
        port, other = launch.spec.port, ports.get(launch.spec.port)
        if other is not None:
            problems.append(f"{member.source}: {member.name}: port {port} is {other}'s too")
            continue
        ports[port] = member.name
        launches.append(launch)
    return Plan(tuple(launches), remotes, vllm, tuple(notes), tuple(problems))


def _launch(
    settings: Settings,
    member: Member,
    vllm: VllmCommand,
    notes: list[str],
    problems: list[str],
) -> Launch | None:
    """One member's launch, or None with its problem added (the notes say what resolved)."""
    spec = member.spec
    assert spec is not None
    said = f"{member.source}: {member.name}:"
    found = resolve(
        spec.model,
        hf_cache=settings.hf_hub_cache,
        model_dirs=settings.model_dirs,
        cwd=settings.cwd,
        ms_cache=settings.modelscope_cache,
    )
    how = f"{found.rule}: {found.reason}"
    notes.append(f"{member.name}: resolved {spec.model} -> {found.target} ({how})")
    if found.rule is Rule.NOT_FOUND:
        problems.append(f"{said} model {spec.model} not found ({found.reason})")
        return None
    if not port_is_free(spec.host, spec.port):
        holders = ", ".join(p.describe() for p in port_holders(spec.port)) or "another process"
        problems.append(f"{said} port {spec.port} is taken by {holders}")
        return None
    resolved = replace(
        spec,
        model=found.target,
        model_is_local=found.is_local,
        served_model_name=member.served_name,
    )
    try:  # a key in the extra args goes to the environment, as `serve` does it
        resolved = take_api_key(resolved)
        argv = tuple(vllm.argv(serve_args(resolved)))
    except SpecError as exc:
        problems.append(f"{said} {exc}")
        return None
    return Launch(member, spec.model, resolved, argv)


@dataclass(frozen=True)
class Waiting:
    """The member waits for these, which share its GPUs, to be ready or to fail."""

    after: tuple[str, ...]


@dataclass(frozen=True)
class NotStarted:
    """Stopped while it waited for its turn: never started, nothing recorded."""


FleetEvent = SessionEvent | Waiting | NotStarted
Listener = Callable[[Launch, FleetEvent], None]


def overlaps(a: Member, b: Member) -> bool:
    """Whether two members may use the same GPU (one without `gpus` may use any)."""
    if a.gpus is None or b.gpus is None:
        return True
    return bool(set(a.gpus) & set(b.gpus))


class Fleet:
    """The local members of one `up`, each a `ServerSession` named and marked with `origin`.

    `run` returns when every session has ended; leaving it early (cancelled) stops them all.
    """

    def __init__(self, settings: Settings, launches: Sequence[Launch], *, origin: str) -> None:
        self.launches = tuple(launches)
        self.sessions = {
            launch.name: ServerSession(
                settings,
                model=launch.model,
                spec=launch.spec,
                argv=launch.argv,
                name=launch.name,
                origin=origin,
            )
            for launch in self.launches
        }
        self._settled = {launch.name: asyncio.Event() for launch in self.launches}
        self._stopping = False

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def ended(self) -> dict[str, SessionEnded | None]:
        return {name: session.ended for name, session in self.sessions.items()}

    def stop_all(self) -> None:
        """Stop every server, and start none that is still waiting for its turn."""
        self._stopping = True
        for session in self.sessions.values():
            session.stop()
        for settled in self._settled.values():  # those waiting for their turn: it came
            settled.set()

    async def run(self, listen: Listener) -> None:
        async with asyncio.TaskGroup() as group:
            for i, launch in enumerate(self.launches):
                before = self.launches[:i]
                after = tuple(b.name for b in before if overlaps(b.member, launch.member))
                group.create_task(self._run_one(launch, after, listen))

    async def _run_one(self, launch: Launch, after: tuple[str, ...], listen: Listener) -> None:
        settled = self._settled[launch.name]
        try:
            if after:
                listen(launch, Waiting(after))
                for name in after:
                    await self._settled[name].wait()
            if self._stopping:
                listen(launch, NotStarted())
                return
            session = self.sessions[launch.name]
            async with contextlib.aclosing(session.events()) as events:
                async for event in events:
                    if isinstance(event, Ready | SessionEnded):
                        settled.set()
                    listen(launch, event)
        finally:
            settled.set()


async def probe_remote(member: Member, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether a remote member answers: `/health` 200, or else `/v1/models` 200 (an endpoint
    that is not vLLM may have no /health)."""
    import httpx  # only here: the console imports this module before its first frame

    base = (member.url or "").rstrip("/").removesuffix("/v1")
    headers = {"Authorization": f"Bearer {member.api_key}"} if member.api_key else {}
    try:
        async with httpx.AsyncClient(timeout=timeout, headers=headers) as client:
            for path in ("/health", "/v1/models"):
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(base + path)).status_code == 200:
                        return True
    except (httpx.InvalidURL, ValueError):  # ValueError: a key no header can carry
        return False
    return False
