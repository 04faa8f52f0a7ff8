# ruff: noqa: E501  (the text blocks below quote vLLM's log lines verbatim)
"""A stand-in for `vllm serve`: a test double that speaks vLLM's protocol, as seen from outside.

Run as `python fake_vllm.py serve MODEL --host H --port P [other vllm flags]` (stdlib only).
Like vLLM 0.32 it prints `(APIServer pid=N) INFO 11-26 11:06:12 [file.py:123] ...` lines and the
same milestones; forks a `VLLM::EngineCore` child that forks a `VLLM::Worker` (same session and
process group, renamed in /proc/PID/comm via prctl and in /proc/PID/cmdline like setproctitle);
binds the port at once but listens only when ready (a backlog of 2048, uvicorn's); then answers
/health, /version, /metrics, /tokenize, /detokenize (a word is a token, `<s>` the special one
added in front), /v1/models, /v1/chat/completions and /v1/completions (SSE when `stream`; a
completion's prompt is counted in those tokens).
`--api-key` (or VLLM_API_KEY) guards /v1 only. SIGTERM/SIGINT stop all three in well under
0.5 s, exit 0; a SIGKILL of the API server leaves the children idling, as vLLM's do, for the
caller's killpg to find. If the EngineCore dies after ready, the API server logs it, exits 1.

FAKE_VLLM_DELAY (default 1.0): seconds until ready. FAKE_VLLM_SCENARIO (default `ok`):
  ok; slow (+200 chatty log lines/s while loading, for DELAY s); ignore_term (every process
  ignores SIGTERM/SIGINT); hub (retries an unreachable hub every 2*DELAY s, forever);
  port (Errno 98; a port really taken gives the same in any scenario); oom; no_kv; inductor;
  max_model_len (only while the max model len > 11568, so `--max-model-len 11568` fixes it);
  bf16 (a GPU without bfloat16, until `--dtype half`); remote_code; tp_heads; world_size;
  quant_gpu; architecture; gated; repo_not_found;
  free_memory (only while --gpu-memory-utilization > 0.13): these print vLLM's error, exit 1;
  stray_worker (the Worker forks a `VLLM::Worker_TP1` that leaves the session when its parent
  dies and ignores SIGTERM: what a stop cannot reach, for the GPU memory check).
FAKE_VLLM_LOG_RATE: once ready, the API server logs that many request lines a second (as a busy
  server's access log does), written in batches every 10 ms, until it stops.
FAKE_VLLM_TOKEN_S (default 0.005): seconds between streamed tokens. A request finished (its
  stream written to the end) counts in `vllm:request_success_total`; `ignore_eos` makes the
  answer exactly `max_tokens` tokens, as vLLM's does.
FAKE_VLLM_CUDA_GIB: the Worker (and the stray) hold that many GiB of GPU memory with PyTorch,
  for checks on a machine with a real GPU.
FAKE_VLLM_WATCH_PID: the test run (tests/conftest.py sets its own pid): when that process is
  gone the stand-in kills its group and exits, so a killed pytest leaves none behind. Only the
  test run's death counts: a stop or a kill by the console under test is what tests check.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import http
import json
import os
import signal
import socketserver
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SCENARIO = os.environ.get("FAKE_VLLM_SCENARIO", "ok")
DELAY = float(os.environ.get("FAKE_VLLM_DELAY", "1.0"))
TOKEN_S = float(os.environ.get("FAKE_VLLM_TOKEN_S", "0.005") or 0)
LOG_RATE = float(os.environ.get("FAKE_VLLM_LOG_RATE", "0") or 0)
ACCESS = (
    '{role} INFO {stamp} [logger.py:71] 127.0.0.1:{n} - "POST /v1/chat/completions HTTP/1.1" 200 OK'
)
VERSION, FIT_LEN, KV_TOKENS = "0.32.0", 11568, 2_097_152
REPLY = "Hello! This is a fake vLLM answering your request."
ROLE = "APIServer"

# Text blocks: `LEVEL file.py:N message` lines are logged vLLM-style with the role prefix,
# `> text` lines get the bare `(Role pid=N) ` prefix, any other line is printed as it is.
API_BOOT = """\
INFO api_server.py:1234 vLLM API server version {version}
INFO api_utils.py:286 non-default args: {shown}"""
API_MODEL = """\
INFO model.py:733 Resolved architecture: LlamaForCausalLM
INFO model.py:2152 Using max model len {max_len}"""
PORT_ERROR = """\
ERROR api_server.py:1302 [Errno {errno}] {strerror}
> Traceback (most recent call last):
>   File "{site}/vllm/entrypoints/openai/api_server.py", line 1271, in create_server_socket
>     sock.bind(addr)
> OSError: [Errno {errno}] {strerror}"""
ENGINE_BOOT = """\
INFO core.py:133 Initializing a V1 LLM engine (v{version}) with config: model='{model}', speculative_config=None, tokenizer='{model}', max_seq_len={max_len}, enforce_eager=False"""
WORKER_BOOT = """\
INFO parallel_state.py:1906 world_size=1 rank=0 local_rank=0 distributed_init_method=tcp://127.0.0.1:40311 backend=nccl
INFO gpu_model_runner.py:3338 Starting to load model {model}..."""
SHARDS = "Loading safetensors checkpoint shards: {p:>3}% Completed | {n}/1 [00:00<00:00, 254it/s]"
WORKER_LOADED = """\
INFO default_loader.py:501 Loading weights took {took:.2f} seconds
INFO gpu_model_runner.py:3420 Model loading took 0.5 GiB memory and {took:.2f} seconds
INFO backends.py:1167 [backbone] Dynamo bytecode transform time: 0.31 s
INFO monitor.py:62 [backbone] torch.compile takes 0.52 s in total"""
ENGINE_READY = """\
INFO gpu_worker.py:298 Available KV cache memory: 1.0 GiB
INFO kv_cache_utils.py:2327 GPU KV cache size: {kv:,} tokens
INFO kv_cache_utils.py:2331 Maximum concurrency for {max_len} tokens per request: {conc:.2f}x
Capturing CUDA graphs (mixed prefill-decode, PIECEWISE): 100%|██████████| 2/2 [00:00<00:00, 20.1it/s]
INFO gpu_model_runner.py:6582 Graph capturing finished in 0 secs, took 0.05 GiB
INFO core.py:402 init engine (profile, create kv cache, warmup model) took 0.42 seconds"""
API_READY = """\
INFO entry.py:136 Supported tasks: ['generate']
INFO entry.py:140 Starting vLLM server on http://{host}:{port}
INFO launcher.py:186 Available routes are:
INFO launcher.py:195 Route: /health, Methods: GET
INFO launcher.py:195 Route: /metrics, Methods: GET
INFO launcher.py:195 Route: /version, Methods: GET
INFO launcher.py:195 Route: /tokenize, Methods: POST
INFO launcher.py:195 Route: /v1/models, Methods: GET
INFO launcher.py:195 Route: /v1/chat/completions, Methods: POST
INFO launcher.py:195 Route: /v1/completions, Methods: POST"""
UVICORN_UP = """\
INFO:     Started server process [{pid}]
INFO:     Waiting for application startup.
INFO:     Application startup complete."""
UVICORN_DOWN = """\
INFO:     Shutting down
INFO:     Waiting for application shutdown.
INFO:     Application shutdown complete.
INFO:     Finished server process [{pid}]"""
ENGINE_FAILED = """\
ERROR core.py:866 EngineCore failed to start.
ERROR core.py:866 Traceback (most recent call last):
ERROR core.py:866   File "{site}/vllm/v1/engine/core.py", line 857, in run_engine_core
ERROR core.py:866     engine_core = EngineCoreProc(*args, **kwargs)
{cause}"""
API_FAILED = """\
> Traceback (most recent call last):
>   File "/usr/local/bin/vllm", line 10, in <module>
>     sys.exit(main())
>   File "{site}/vllm/v1/engine/utils.py", line 1007, in wait_for_engine_startup
>     raise RuntimeError(
> RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {{'EngineCore': 1}}"""
CAUSES = {  # the tail of EngineCore's traceback, per failure scenario
    "oom": """\
  File "{site}/vllm/v1/worker/gpu_worker.py", line 272, in determine_available_memory
    self.model_runner.profile_run()
torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 23.55 GiB of which 1.02 GiB is free.""",
    "max_model_len": """\
  File "{site}/vllm/v1/core/kv_cache_utils.py", line 686, in check_enough_kv_cache_memory
    raise ValueError(
ValueError: To serve at least one request with the models's max seq len ({max_len}), ({need:.2f} GiB KV cache is needed, which is larger than the available KV cache memory (2.47 GiB). Based on the available memory, the estimated maximum model length is 11568. Try increasing `gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine.""",
    "no_kv": """\
  File "{site}/vllm/v1/core/kv_cache_utils.py", line 661, in check_enough_kv_cache_memory
    raise ValueError(
ValueError: No available memory for the cache blocks. Try increasing `gpu_memory_utilization` when initializing the engine.""",
    "inductor": """\
  File "{site}/torch/_inductor/select_algorithm.py", line 1462, in __init__
    assert name not in self.all_templates, "duplicate template name"
AssertionError: duplicate template name""",
    "bf16": """\
  File "{site}/vllm/platforms/cuda.py", line 648, in check_if_supports_dtype
    raise ValueError(
ValueError: Bfloat16 is only supported on GPUs with compute capability of at least 8.0. Your Tesla T4 GPU has compute capability 7.5. You can use float16 instead by explicitly setting the `dtype` flag in CLI, for example: --dtype=half.""",
    "remote_code": """\
  File "{site}/vllm/transformers_utils/config.py", line 417, in parse
    raise RuntimeError(err_msg) from e
RuntimeError: Failed to load the model config. If the model is a custom model not yet available in the HuggingFace transformers library, consider setting `trust_remote_code=True` in LLM or using the `--trust-remote-code` flag in the CLI.""",
    "tp_heads": """\
  File "{site}/vllm/config/model.py", line 1547, in verify_with_parallel_config
    raise ValueError(
ValueError: Total number of attention heads (28) must be divisible by tensor parallel size (8).""",
    "world_size": """\
  File "{site}/vllm/config/parallel.py", line 1052, in __post_init__
    raise ValueError(
ValueError: World size (4) is larger than the number of available GPUs (2) in this node. If this is intentional and you are using:""",
    "quant_gpu": """\
  File "{site}/vllm/config/vllm.py", line 902, in _get_quantization_config
    raise ValueError(
ValueError: The quantization method fp8 is not supported for the current GPU. Minimum capability: 89. Current capability: 80.""",
    "architecture": """\
  File "{site}/vllm/model_executor/models/registry.py", line 1205, in _raise_for_unsupported
    raise ValueError(
ValueError: Model architectures ['FancyNewForCausalLM'] are not supported for now. Supported architectures: dict_keys(['LlamaForCausalLM'])""",
    "gated": """\
  File "{site}/huggingface_hub/utils/_http.py", line 889, in hf_raise_for_status
    raise _format(GatedRepoError, message, response) from e
huggingface_hub.errors.GatedRepoError: 401 Client Error. (Request ID: Root=1-abc)
Cannot access gated repo for url https://huggingface.co/meta-llama/Llama-3.1-8B-Instruct/resolve/main/config.json.""",
    "repo_not_found": """\
  File "{site}/huggingface_hub/utils/_http.py", line 878, in hf_raise_for_status
    raise _format(RepositoryNotFoundError, message, response) from e
huggingface_hub.errors.RepositoryNotFoundError: 404 Client Error. (Request ID: Root=1-abc)
Repository Not Found for url: https://huggingface.co/api/models/Qwen/Qwen9-Typo.""",
    "worker": """\
  File "{site}/vllm/v1/executor/multiproc_executor.py", line 577, in wait_for_ready
    raise e from None
Exception: WorkerProc initialization failed due to an exception in a background process. See stack trace for root cause.""",
}
# A failure scenario that the right relaunch flag cures, as the real one would be.
FIXED_BY: dict[str, Callable[[argparse.Namespace], bool]] = {
    "max_model_len": lambda cfg: cfg.max_len <= FIT_LEN,
    "bf16": lambda cfg: cfg.dtype in ("half", "float16"),
}
FREE_MEMORY = """\
ERROR multiproc_executor.py:743 WorkerProc failed to start.
ERROR multiproc_executor.py:743 Traceback (most recent call last):
ERROR multiproc_executor.py:743   File "{site}/vllm/v1/worker/gpu_worker.py", line 214, in init_device
ERROR multiproc_executor.py:743     raise ValueError(
ERROR multiproc_executor.py:743 ValueError: Free memory on device cuda:0 (3.1/23.55 GiB) on startup is less than desired GPU memory utilization ({util}, {want:.1f} GiB). Decrease GPU memory utilization or reduce GPU memory used by other processes."""
HUB_RETRY = """\
> '(MaxRetryError("HTTPSConnectionPool(host='huggingface.co', port=443): Max retries exceeded with url: /{model}/resolve/main/config.json (Caused by NameResolutionError("<urllib3.connection.HTTPSConnection object at 0x7f3c2a1b5d90>: Failed to resolve 'huggingface.co' ([Errno -3] Temporary failure in name resolution)"))"), '(Request ID: 5c1f0e2a)')' thrown while requesting HEAD https://huggingface.co/{model}/resolve/main/config.json
> Retrying in {attempt}s [Retry {attempt}/5]."""
HUB_GAVE_UP = """\
WARNING config.py:432 We couldn't connect to 'https://huggingface.co' to load the files, and couldn't find them in the cached files. Check your internet connection or see how to run the library in offline mode at 'https://huggingface.co/docs/transformers/installation#offline-mode'."""
API_SHUTDOWN = """\
INFO launcher.py:254 [shutdown] API server: shutdown triggered
INFO core_client.py:772 [shutdown] MPClient: stopping engine manager
INFO utils.py:628 [shutdown] Process manager: send sigterm to process EngineCore"""
ENGINE_DEAD = """\
ERROR async_llm.py:525 AsyncLLM output_handler failed.
ERROR async_llm.py:525 Traceback (most recent call last):
ERROR async_llm.py:525   File "{site}/vllm/v1/engine/async_llm.py", line 481, in output_handler
ERROR async_llm.py:525     outputs = await engine_core.get_output_async()
ERROR async_llm.py:525 vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue. See stack trace (above) for the root cause."""
DIED = (
    "ERROR core_client.py:564 Engine core proc EngineCore died unexpectedly, shutting down client."
)
FORCE_KILL = (
    "WARNING system_utils.py:225 [shutdown] force killing sub process VLLM::Worker pid {worker}"
)
LEAKED = """\
/usr/lib/python3.12/multiprocessing/resource_tracker.py:254: UserWarning: resource_tracker: There appear to be 1 leaked semaphore objects to clean up at shutdown
  warnings.warn('resource_tracker: There appear to be %d '"""


class Shutdown(Exception):
    """Raised by SIGTERM/SIGINT in the main thread of whichever role got the signal."""


def _raise_shutdown(signum: int, _frame: object) -> None:
    raise Shutdown(signal.Signals(signum).name)


def install_signals(handler: object = None) -> None:
    if handler is None:
        handler = signal.SIG_IGN if SCENARIO == "ignore_term" else _raise_shutdown
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handler)  # type: ignore[arg-type]


def say(block: str, err: bool = False, **kw: object) -> None:
    """Print a text block (see above), formatted with kw, flushed line by line."""
    role, stamp = f"({ROLE} pid={os.getpid()})", f"{datetime.now():%m-%d %H:%M:%S}"
    site = "/usr/local/lib/python3.12/site-packages"
    for line in block.format(site=site, version=VERSION, pid=os.getpid(), **kw).split("\n"):
        level, where, msg = [*line.split(" ", 2), "", ""][:3]
        if level in ("INFO", "WARNING", "ERROR") and ".py:" in where:
            line = f"{role} {level} {stamp} [{where}] {msg}"
        elif line.startswith("> "):
            line = f"{role} {line[2:]}"
        with contextlib.suppress(OSError, ValueError):
            print(line, file=sys.stderr if err else sys.stdout, flush=True)


def chatter(rate: float) -> None:
    """Log `rate` access lines a second, in a batch every 10 ms (what is due by then)."""
    role, start, sent = f"({ROLE} pid={os.getpid()})", time.monotonic(), 0
    while True:
        due = int((time.monotonic() - start) * rate)
        stamp = f"{datetime.now():%m-%d %H:%M:%S}"
        lines = [
            ACCESS.format(role=role, stamp=stamp, n=40000 + n % 20000) for n in range(sent, due)
        ]
        sent = due
        if lines:
            with contextlib.suppress(OSError, ValueError):
                sys.stdout.write("\n".join(lines) + "\n")
                sys.stdout.flush()
        time.sleep(0.01)


def become(role: str, title: str) -> None:
    """Rename this process: /proc/PID/comm via prctl, /proc/PID/cmdline as setproctitle does."""
    global ROLE
    ROLE = role
    with contextlib.suppress(OSError, ValueError, IndexError, AttributeError):
        ctypes.CDLL(None).prctl(15, title.encode()[:15], 0, 0, 0)  # PR_SET_NAME
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        start, end = int(fields[45]), int(fields[46])  # stat fields 48, 49: arg_start, arg_end
        if 0 < start < end and end - start < 1 << 20:
            ctypes.memset(start, 0, end - start)
            ctypes.memmove(start, title.encode(), min(len(title), end - start - 1))


def fork_role(fn: Callable[..., int], *args: object, close: tuple[int, ...] = ()) -> int:
    """Fork a child that runs fn(*args) and exits with its result; the parent gets its pid."""
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        for fd in close:
            os.close(fd)
        code = fn(*args)
    except Shutdown:
        code = 0
    finally:
        os._exit(code)


def send(fd: int, msg: str) -> None:
    with contextlib.suppress(OSError):
        os.write(fd, f"{msg}\n".encode())


def reap(pid: int | None, grace: float, term: bool = True) -> None:
    """SIGTERM a child (unless not term), wait up to grace seconds, then SIGKILL it."""
    with contextlib.suppress(ProcessLookupError, ChildProcessError):
        if not pid:
            return
        if term:
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if os.waitpid(pid, os.WNOHANG)[0]:
                return
            time.sleep(0.005)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def idle() -> None:
    while True:
        time.sleep(3600)


def run_worker(cfg: argparse.Namespace, up: int) -> int:
    become("Worker", "VLLM::Worker")
    install_signals()
    try:
        if SCENARIO == "free_memory" and cfg.util * 23.55 > 3.1:
            say(FREE_MEMORY, util=cfg.util, want=cfg.util * 23.55)
            send(up, "fail")
            return 1
        say(WORKER_BOOT, model=cfg.model)
        say(SHARDS, True, p=0, n=0)
        t0 = time.monotonic()
        for i in range(int(200 * DELAY) if SCENARIO == "slow" else 0):
            say(f"INFO weight_utils.py:512 Loaded model.layers.{i % 48}.mlp.weight, step {i}")
            time.sleep(0.05 if i % 10 == 9 else 0)
        time.sleep(0.35 * DELAY)
        say(SHARDS + "\n", True, p=100, n=1)
        say(WORKER_LOADED, took=time.monotonic() - t0)
        if SCENARIO == "stray_worker":
            fork_role(run_stray)
        hold_gpu_memory()
        send(up, "loaded")
        idle()
    except Shutdown:
        say("INFO multiproc_executor.py:843 Parent process exited, terminating worker queues")
    return 0


def hold_gpu_memory() -> object:
    """With FAKE_VLLM_CUDA_GIB set (and PyTorch with a GPU), hold that much GPU memory."""
    gib = float(os.environ.get("FAKE_VLLM_CUDA_GIB") or 0)
    if gib <= 0:
        return None
    import torch  # only where a real GPU check asks for it

    block = torch.ones(int(gib * (1 << 30)), dtype=torch.uint8, device="cuda")
    torch.cuda.synchronize()
    HELD.append(block)
    return block


HELD: list[object] = []


def run_stray() -> int:
    """A second worker that outlives the stop: when its parent dies it leaves the session."""
    become("Worker", "VLLM::Worker_TP1")
    null = os.open(os.devnull, os.O_RDWR)  # no pipe or socket of the server stays open in it
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.closerange(3, 1 << 16)
    signal.signal(signal.SIGUSR1, lambda *_: os.setsid())
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGUSR1)
    hold_gpu_memory()
    idle()
    return 0


def run_engine(cfg: argparse.Namespace, up: int) -> int:
    become("EngineCore", "VLLM::EngineCore")
    install_signals()
    worker = None
    try:
        say(ENGINE_BOOT, model=cfg.model, max_len=cfg.max_len)
        r, w = os.pipe()
        worker = fork_role(run_worker, cfg, w, close=(r, up))
        os.close(w)
        send(up, f"worker {worker}")
        with os.fdopen(r) as pipe:
            cause = None if pipe.readline().strip() == "loaded" else "worker"
        time.sleep(0.1 * DELAY)
        fixed = FIXED_BY.get(SCENARIO)
        if SCENARIO in CAUSES and (fixed is None or not fixed(cfg)):
            cause = SCENARIO
        if cause:
            lines = (f"ERROR core.py:866 {line}" for line in CAUSES[cause].split("\n"))
            text = ENGINE_FAILED.replace("{cause}", "\n".join(lines))
            say(text, max_len=cfg.max_len, need=7.0 * cfg.max_len / 32768)
            reap(worker, 0.2)
            send(up, "fail")
            return 1
        say(ENGINE_READY, kv=KV_TOKENS, max_len=cfg.max_len, conc=KV_TOKENS / cfg.max_len)
        time.sleep(0.1 * DELAY)
        send(up, "ready")
        idle()
    except Shutdown as sig:
        install_signals(signal.SIG_IGN)
        say(f"INFO core.py:1454 [shutdown] EngineCore: trigger received signal={sig}")
        say("INFO core.py:1499 [shutdown] EngineCore: exiting busy loop")
        reap(worker, 0.2)
    return 0


class Handler(BaseHTTPRequestHandler):
    """vLLM's OpenAI-compatible routes, minimal, with uvicorn's access log on stdout."""

    cfg: argparse.Namespace
    stats = {"running": 0, "prompt": 0, "generation": 0, "success": 0}
    lock = threading.Lock()
    ids: dict[str, int] = {"<s>": 0}  # the word tokenizer's vocabulary, grown as words come
    vocab: list[str] = ["<s>"]

    def log_message(self, *args: object) -> None:
        pass

    def version_string(self) -> str:
        return "uvicorn"

    def reply(self, code: int, body: object = None, ctype: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode() if body else b""
        self.send_response(code)
        self.send_header("content-type", ctype)
        if ctype != "text/event-stream":
            self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        request = f"{self.command} {self.path} {self.request_version}".replace("{", "{{")
        request = request.replace("}", "}}")
        host, port = self.client_address[:2]
        say(f'INFO:     {host}:{port} - "{request}" {code} {http.HTTPStatus(code).phrase}')

    def allowed(self) -> bool:
        key, given = self.cfg.api_key, self.headers.get("Authorization")
        if key and self.path.startswith("/v1") and given != f"Bearer {key}":
            self.reply(401, {"error": "Unauthorized"})
            return False
        return True

    def do_GET(self) -> None:
        cfg, s = self.cfg, self.stats
        if not self.allowed():
            return
        if self.path == "/health":
            self.reply(200)
        elif self.path == "/version":
            self.reply(200, {"version": VERSION})
        elif self.path == "/v1/models":
            card = {"object": "model", "created": int(time.time()), "owned_by": "vllm"}
            card.update(root=cfg.model, parent=None, max_model_len=cfg.max_len)
            self.reply(200, {"object": "list", "data": [{"id": n, **card} for n in cfg.names]})
        elif self.path == "/metrics":
            label = f'{{engine="0",model_name="{cfg.names[0]}"}}'
            rows = [("num_requests_running", "gauge", s["running"]),
                    ("num_requests_waiting", "gauge", 0),
                    ("kv_cache_usage_perc", "gauge", 0.0),
                    ("num_preemptions_total", "counter", 0),
                    ("prompt_tokens_total", "counter", s["prompt"]),
                    ("generation_tokens_total", "counter", s["generation"]),
                    ("prefix_cache_queries_total", "counter", s["prompt"]),
                    ("prefix_cache_hits_total", "counter", 0),
                    ("request_success_total", "counter", s["success"])]  # fmt: skip
            text = "".join(f"# HELP vllm:{n} {n}.\n# TYPE vllm:{n} {t}\nvllm:{n}{label} {v:.1f}\n"
                           for n, t, v in rows)  # fmt: skip
            self.reply(200, text.encode(), "text/plain; version=0.0.4; charset=utf-8")
        else:
            self.reply(404, {"detail": "Not Found"})

    def do_POST(self) -> None:
        if not self.allowed():
            return
        try:
            req = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or "{}")
        except ValueError:
            return self.reply(400, {"error": {"message": "invalid JSON", "code": 400}})
        chat, model = self.path == "/v1/chat/completions", req.get("model") or self.cfg.names[0]
        if self.path == "/tokenize":
            text = req.get("prompt") if isinstance(req.get("prompt"), str) else json.dumps(req)
            ids = self.encode(text, req.get("add_special_tokens", True) is not False)
            return self.reply(200, {"count": len(ids), "max_model_len": self.cfg.max_len,
                                    "tokens": ids})  # fmt: skip
        if self.path == "/detokenize":
            ids = [t for t in req.get("tokens") or () if type(t) is int]
            with self.lock:
                words = [self.vocab[t] for t in ids if 0 < t < len(self.vocab)]
            return self.reply(200, {"prompt": " ".join(words)})
        if not chat and self.path != "/v1/completions":
            return self.reply(404, {"detail": "Not Found"})
        if model not in self.cfg.names:
            error = {"message": f"The model `{model}` does not exist.", "code": 404}
            return self.reply(404, {"error": {**error, "type": "NotFoundError", "param": "model"}})
        words = [w + " " for w in REPLY.split()]
        limit = req.get("max_completion_tokens") or req.get("max_tokens") or len(words)
        if req.get("ignore_eos"):  # as vLLM: exactly max_tokens tokens, never a stop
            words = (words * (limit // len(words) + 1))[:limit]
        finish, words = "stop" if limit >= len(words) else "length", words[:limit]
        given = req.get("prompt")
        prompt = (len(given) if isinstance(given, list) else len(self.encode(given))
                  if isinstance(given, str) else len(json.dumps(req.get("messages")).split()))  # fmt: skip
        usage = {"prompt_tokens": prompt, "completion_tokens": len(words)}
        usage["total_tokens"] = prompt + len(words)
        rid = ("chatcmpl-" if chat else "cmpl-") + os.urandom(8).hex()
        base = {"id": rid, "created": int(time.time()), "model": model}
        kind = "chat.completion" if chat else "text_completion"
        with self.lock:
            self.stats["running"] += 1
        finished = False
        try:
            if not req.get("stream"):
                text = "".join(words)
                msg = {"role": "assistant", "content": text}
                out = {"message": msg} if chat else {"text": text}
                choice = {"index": 0, **out, "logprobs": None, "finish_reason": finish}
                body = {**base, "object": kind, "choices": [choice], "usage": usage}
                self.reply(200, body)
                finished = True
                return
            self.reply(200, ctype="text/event-stream")
            pieces = [{"role": "assistant", "content": ""}] if chat else []
            pieces += [{"content": w} if chat else {"text": w} for w in words]
            chunk = kind + (".chunk" if chat else "")
            for i, piece in enumerate(pieces):
                part = {"delta": piece} if chat else piece
                fin = finish if i == len(pieces) - 1 else None
                choice = {"index": 0, **part, "logprobs": None, "finish_reason": fin}
                self.event({**base, "object": chunk, "choices": [choice]})
                time.sleep(TOKEN_S)
            if (req.get("stream_options") or {}).get("include_usage"):
                self.event({**base, "object": chunk, "choices": [], "usage": usage})
            self.wfile.write(b"data: [DONE]\n\n")
            finished = True
        finally:
            with self.lock:
                self.stats["running"] -= 1
                self.stats["prompt"] += prompt
                self.stats["generation"] += len(words)
                self.stats["success"] += finished

    def encode(self, text: str, special: bool = True) -> list[int]:
        ids = [0] if special else []
        with self.lock:
            for word in text.split():
                if word not in self.ids:
                    self.ids[word] = len(self.vocab)
                    self.vocab.append(word)
                ids.append(self.ids[word])
        return ids

    def event(self, obj: object) -> None:
        self.wfile.write(f"data: {json.dumps(obj)}\n\n".encode())
        self.wfile.flush()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 2048  # uvicorn's backlog: socketserver's 5 refuses a burst of clients

    def server_bind(self) -> None:  # skips HTTPServer's getfqdn(), which may wait on DNS
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)


def run_api(cfg: argparse.Namespace, shown: dict[str, object]) -> int:
    engine = worker = None
    serving = False
    try:
        say(API_BOOT, shown=shown)
        while SCENARIO == "hub":  # never gets past resolving the model
            for attempt in range(1, 6):
                say(HUB_RETRY, True, model=cfg.model, attempt=attempt)
                time.sleep(2 * DELAY)
            say(HUB_GAVE_UP)
        server = Server((cfg.host, cfg.port), Handler, bind_and_activate=False)
        try:  # vLLM binds first, listens only once the engine is up
            server.server_bind()
            if SCENARIO == "port":
                raise OSError(98, "Address already in use")
        except OSError as exc:
            say(PORT_ERROR, errno=exc.errno, strerror=exc.strerror)
            return 1
        say(API_MODEL, max_len=cfg.max_len)
        time.sleep(0.15 * DELAY)
        r, w = os.pipe()
        engine = fork_role(run_engine, cfg, w, close=(r, server.fileno()))
        os.close(w)
        status = ""
        with os.fdopen(r) as pipe:
            for line in pipe:
                worker = int(line.split()[1]) if line.startswith("worker ") else worker
                if (status := line.strip()) in ("ready", "fail"):
                    break
        if status != "ready":
            reap(engine, 1.0, term=False)  # it is exiting on its own
            engine = None
            say(API_FAILED, True)
            return 1
        time.sleep(0.15 * DELAY)
        say(API_READY, host=cfg.host, port=cfg.port)
        Handler.cfg = cfg
        server.server_activate()
        threading.Thread(target=server.serve_forever, daemon=True).start()
        serving = True
        say(UVICORN_UP, True)
        if LOG_RATE > 0:
            threading.Thread(target=chatter, args=(LOG_RATE,), daemon=True).start()
        os.waitpid(engine, 0)  # returns only if the EngineCore dies on its own
        engine = None
        say(DIED)
        reap(worker, 0.0)
        return 1
    except Shutdown:
        install_signals(signal.SIG_IGN)
        say(API_SHUTDOWN if engine else API_SHUTDOWN.split("\n")[0])
        reap(engine, 0.4)
        if worker:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker, signal.SIGKILL)
                say(FORCE_KILL, worker=worker)
        if engine:
            say(ENGINE_DEAD)
        if serving:
            say(UVICORN_DOWN, True)
        say(LEAKED, True)
        return 0


def parse(argv: list[str]) -> tuple[argparse.Namespace, dict[str, object]]:
    p = argparse.ArgumentParser(prog="vllm", add_help=False)
    p.add_argument("command", choices=["serve"])
    p.add_argument("model_tag", nargs="?")
    for flag in ("--model", "--host", "--api-key", "--max-model-len", "--dtype"):
        p.add_argument(flag)
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--served-model-name", nargs="+")
    p.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    cfg, extra = p.parse_known_args(argv)
    defaults = {"command": "serve", "port": 8000, "gpu_memory_utilization": 0.9}
    shown = {k: v for k, v in vars(cfg).items() if v is not None and defaults.get(k) != v}
    if str(cfg.max_model_len).isdigit():
        shown["max_model_len"] = int(cfg.max_model_len)
    for i, arg in enumerate(extra):  # echo the other flags, as vLLM's non-default args line does
        if arg.startswith("--"):
            name, _, value = arg[2:].replace("-", "_").partition("=")
            if not value and i + 1 < len(extra) and not extra[i + 1].startswith("--"):
                value = extra[i + 1]
            typed: object = int(value) if value.lstrip("-").isdigit() else value
            shown[name.removeprefix("no_")] = typed if value != "" else not name.startswith("no_")
    cfg.model = cfg.model_tag or cfg.model or "Qwen/Qwen3-0.6B"
    cfg.host, cfg.names = cfg.host or "0.0.0.0", cfg.served_model_name or [cfg.model]
    cfg.api_key = cfg.api_key or os.environ.get("VLLM_API_KEY")
    cfg.util, cfg.max_len = cfg.gpu_memory_utilization, 32768
    config = os.path.join(cfg.model, "config.json")
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError), open(config) as f:
        cfg.max_len = int(json.load(f)["max_position_embeddings"])
    if text := cfg.max_model_len:  # vLLM takes 4096, 32k (x1000) or 32K (x1024)
        scale = {"k": 1000, "K": 1024, "m": 10**6, "M": 2**20}
        cfg.max_len = int(text.rstrip("kKmM")) * scale.get(text[-1], 1)
    return cfg, shown


def watch_test_run(pid: int) -> None:
    """Until the test run `pid` is gone; then the stand-in's own group (or itself, if it
    leads none: its caller's group is not its to kill) goes with it."""
    while True:
        time.sleep(2.0)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        except PermissionError:
            continue  # there, under another user
    if os.getpgrp() == os.getpid():
        os.killpg(os.getpid(), signal.SIGKILL)
    os._exit(1)


if __name__ == "__main__":
    if (watched := os.environ.get("FAKE_VLLM_WATCH_PID", "")).isdigit():
        threading.Thread(target=watch_test_run, args=(int(watched),), daemon=True).start()
    install_signals()
    sys.exit(run_api(*parse(sys.argv[1:])))
