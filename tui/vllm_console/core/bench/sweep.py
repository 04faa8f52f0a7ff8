"""A benchmark sweep: the endpoint probed, then one step per concurrency level, each checked
against the server's counters, the whole kept as a `BenchRecord`.

Which client runs the load: `auto` runs the user's `vllm bench serve` when a local vLLM has
it (and falls back to the console's client, saying why, when it cannot run or fails on the
first step); `vllm` insists on it; `console` uses the console's own client. Events go to
`on_event` as they happen (`StepStarted`, `Progress`, `StepDone`, `Finding`). A step in which
requests failed and after which the endpoint no longer answers ends the sweep: what was
measured is kept. Cancelling `Sweep.run` closes every connection; `Sweep.record("cancelled")`
still gives what was done.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from vllm_console.core.bench.arrivals import INF, arrival_times, rate_json
from vllm_console.core.bench.counters import between, settle
from vllm_console.core.bench.load import Progress, Target, client_for, run_step
from vllm_console.core.bench.prompts import (
    DatasetError,
    Prompt,
    ServerTokenizer,
    load_sharegpt,
    random_prompts,
)
from vllm_console.core.bench.stats import CONSOLE, VLLM, StepResult
from vllm_console.core.bench.vllm_bench import BenchFailure, Load, bench_prefix, run_vllm_step
from vllm_console.core.endpoint.capped import fetch
from vllm_console.core.endpoint.client import make_client, probe
from vllm_console.core.serve.install import VllmCommand

CLIENTS = ("auto", "vllm", "console")
DATASETS = ("random", "sharegpt")


@dataclass(frozen=True)
class BenchConfig:
    base_url: str
    concurrency: tuple[int, ...] = (1, 4, 16)
    num_prompts: int = 64
    input_len: int = 1024
    output_len: int = 128
    model: str | None = None
    api_key: str | None = None
    dataset: str = "random"
    dataset_path: Path | None = None
    client: str = "auto"
    seed: int = 0
    request_rate: float = INF  # requests a second; inf: all at once
    burstiness: float = 1.0  # gamma shape of the gaps: 1 Poisson, inf evenly spaced
    server_name: str | None = None  # the launch it benches, when the console started it
    launch_argv: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "concurrency": list(self.concurrency),
            "num_prompts": self.num_prompts,
            "input_len": self.input_len,
            "output_len": self.output_len,
            "model": self.model,
            "dataset": self.dataset,
            "dataset_path": None if self.dataset_path is None else str(self.dataset_path),
            "client": self.client,
            "seed": self.seed,
            "request_rate": rate_json(self.request_rate),
            "burstiness": rate_json(self.burstiness),
            "server_name": self.server_name,
        }


@dataclass(frozen=True)
class StepStarted:
    concurrency: int
    total: int
    source: str


@dataclass(frozen=True)
class StepDone:
    step: StepResult


@dataclass(frozen=True)
class Finding:
    text: str


Event = StepStarted | Progress | StepDone | Finding
EventFn = Callable[[Event], None]


@dataclass(frozen=True)
class BenchRecord:
    """A finished (or cancelled, or failed) sweep, as the archive keeps it."""

    config: BenchConfig
    status: str  # done, cancelled, failed
    started: float
    ended: float
    model: str | None = None
    source: str | None = None  # who ran the load: "vllm" or "console"
    server_version: str | None = None
    steps: tuple[StepResult, ...] = ()
    findings: tuple[str, ...] = field(default=())
    id: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "bench",
            "id": self.id,
            "status": self.status,
            "started": self.started,
            "ended": self.ended,
            "model": self.model,
            "source": self.source,
            "server_version": self.server_version,
            "launch_argv": list(self.config.launch_argv),
            "config": self.config.to_json(),
            "steps": [step.to_json() for step in self.steps],
            "findings": list(self.findings),
        }


class Sweep:
    def __init__(
        self, config: BenchConfig, vllm: VllmCommand | None, on_event: EventFn | None = None
    ) -> None:
        self.config = config
        self.vllm = vllm
        self.on_event = on_event or (lambda _event: None)
        self.started = time.time()
        self.model: str | None = config.model
        self.source: str | None = None
        self.version: str | None = None
        self.steps: list[StepResult] = []
        self.findings: list[str] = []

    def _say(self, text: str) -> None:
        self.findings.append(text)
        self.on_event(Finding(text))

    def record(self, status: str) -> BenchRecord:
        return BenchRecord(
            config=self.config,
            status=status,
            started=self.started,
            ended=time.time(),
            model=self.model,
            source=self.source,
            server_version=self.version,
            steps=tuple(self.steps),
            findings=tuple(self.findings),
        )

    async def run(self) -> BenchRecord:
        cfg = self.config
        status = await probe(cfg.base_url, cfg.api_key, cfg.model)
        if not status.ok:
            self._say(status.summary() if not status.reachable else "; ".join(status.problems))
            return self.record("failed")
        self.version = status.version
        self.model = cfg.model or status.model_ids[0]
        tokenizer = await self._tokenizer()
        prefix, why = bench_prefix(self.vllm) if self.vllm else ((), "no local vLLM")
        if cfg.client == "vllm" and not prefix:
            self._say(f"vllm bench serve cannot run: {why}")
            return self.record("failed")
        use_vllm = cfg.client != "console" and bool(prefix)
        if cfg.client == "auto" and not prefix:
            self._say(f"the console's own client runs the load ({why})")
        path = None if cfg.dataset_path is None else str(cfg.dataset_path)
        load = Load(
            cfg.base_url, self.model, tokenizer or self.model, cfg.num_prompts, cfg.input_len,
            cfg.output_len, cfg.dataset, path, cfg.api_key, cfg.seed, cfg.request_rate,
            cfg.burstiness,
        )  # fmt: skip
        prompts: list[Prompt] | None = None
        async with make_client(cfg.base_url) as http:
            for concurrency in cfg.concurrency:
                before = await settle(http, cfg.base_url, cfg.api_key)
                step: StepResult | None = None
                if use_vllm:
                    self.source = VLLM
                    self.on_event(StepStarted(concurrency, cfg.num_prompts, VLLM))
                    try:
                        step = await run_vllm_step(prefix, load, concurrency)
                    except BenchFailure as exc:
                        self._say(exc.finding)
                        if cfg.client == "vllm" or self.steps:
                            return self.record("failed")
                        self._say("the console's own client runs the load instead")
                        use_vllm = False
                if step is None:
                    self.source = CONSOLE
                    if prompts is None:
                        try:
                            prompts = await self._prompts(http)
                        except DatasetError as exc:
                            self._say(str(exc))
                            return self.record("failed")
                    self.on_event(StepStarted(concurrency, len(prompts), CONSOLE))
                    async with client_for(concurrency, cfg.base_url) as pool:
                        target = Target(cfg.base_url, self.model, cfg.api_key)
                        times = arrival_times(
                            len(prompts), cfg.request_rate, cfg.burstiness, cfg.seed
                        )
                        step = await run_step(
                            pool, target, prompts, cfg.output_len, concurrency, self.on_event,
                            times,
                        )  # fmt: skip
                after = await settle(http, cfg.base_url, cfg.api_key)
                step = step.with_counters(between(before, after))
                if step.mismatch:
                    self._say(f"concurrency {concurrency}: {step.mismatch}")
                self.steps.append(step)
                self.on_event(StepDone(step))
                if step.failed and not (await probe(cfg.base_url, cfg.api_key)).reachable:
                    self._say(f"the endpoint stopped answering during concurrency {concurrency}")
                    return self.record("failed")
        return self.record("done")

    async def _prompts(self, http: Any) -> list[Prompt]:
        cfg = self.config
        if cfg.dataset == "sharegpt" and cfg.dataset_path is not None:
            return load_sharegpt(cfg.dataset_path, cfg.num_prompts)
        tokenizer = ServerTokenizer(http, cfg.base_url, self.model or "", cfg.api_key)
        prompts, exact = await random_prompts(tokenizer, cfg.num_prompts, cfg.input_len, cfg.seed)
        if not exact:
            self._say("the server cannot tokenize: prompts are words, lengths approximate")
        return prompts

    async def _tokenizer(self) -> str | None:
        """The served model's `root` (its folder or hub id), as vLLM lists it."""
        async with make_client(self.config.base_url) as http:
            answer = await fetch(
                http, f"{self.config.base_url.rstrip('/')}/models", api_key=self.config.api_key
            )
        body = answer.json()
        cards = body.get("data") if isinstance(body, dict) else None
        for card in cards if isinstance(cards, list) else []:
            if isinstance(card, dict) and card.get("id") == self.model:
                root = card.get("root")
                return root if isinstance(root, str) and root else None
        return None


def with_id(record: BenchRecord, run_id: str) -> BenchRecord:
    return replace(record, id=run_id)
