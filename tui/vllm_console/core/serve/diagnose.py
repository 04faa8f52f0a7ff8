"""Reading vLLM's log: which phase a line marks, and which failure it reports, with the fix.

Wording differs a little between vLLM releases, so the patterns match loosely. The word ERROR
alone means nothing (a clean shutdown logs some); only the known failures become findings.

A log is untrusted text: each line is read up to LINE_CAP characters, no pattern can scan
without bound from a match's start, and a figure that is not a plausible one (a 400-digit
length, "1.2.3" GiB) gives the finding without a number or fix rather than an exception.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum


class Phase(StrEnum):
    STARTING = "starting"
    LOADING_WEIGHTS = "loading weights"
    COMPILING = "compiling"  # torch.compile, and the profiling run that needs it
    ALLOCATING_KV = "allocating KV cache"
    WARMING_UP = "warming up"  # CUDA graph capture and the compile warm-up after the KV cache
    STARTING_SERVER = "starting API server"
    READY = "ready"
    FAILED = "failed"
    STOPPING = "stopping"
    STOPPED = "stopped"


# Milestones in the order vLLM prints them; a line can only move the phase forward.
MILESTONES: tuple[tuple[re.Pattern[str], Phase], ...] = (
    (
        re.compile(r"Loading (safetensors|pt) checkpoint shards|Starting to load model"),
        Phase.LOADING_WEIGHTS,
    ),
    (re.compile(r"Loading weights took|Model loading took"), Phase.LOADING_WEIGHTS),
    # On a GPU, compiling and graph capture often take longer than the weights themselves;
    # the CPU build compiles in its "warming up" step, before the KV cache.
    (
        re.compile(
            r"Starting torch\.compile|Dynamo bytecode transform time|Compiling a graph for"
            r"|torch\.compile takes|Warming up model for the compilation"
            r"|Initial profiling/warmup run took|Memory profiling takes"
        ),
        Phase.COMPILING,
    ),
    (
        re.compile(r"Available KV cache memory|KV cache size:|Maximum concurrency for"),
        Phase.ALLOCATING_KV,
    ),
    (
        re.compile(
            r"Capturing CUDA graphs|Graph capturing finished|Compile and warming up model for size"
        ),
        Phase.WARMING_UP,
    ),
    (
        re.compile(r"Starting vLLM (API )?server|Available routes are|Started server process"),
        Phase.STARTING_SERVER,
    ),
)
_ORDER = list(Phase)
# Launched, not yet answering /health: the phases the milestones move through.
BOOTING = frozenset(_ORDER[: _ORDER.index(Phase.READY)])


def next_phase(current: Phase, line: str) -> Phase:
    """The phase after `line`; never moves backwards, never reaches READY (that is /health)."""
    for pattern, phase in MILESTONES:
        if _ORDER.index(phase) > _ORDER.index(current) and pattern.search(line):
            return phase
    return current


@dataclass(frozen=True)
class Fix:
    """A change to the launch spec that addresses a finding: field name and new value."""

    field: str
    value: object
    label: str


@dataclass(frozen=True)
class Finding:
    rule: str
    cause: str
    hint: str
    line: str
    fix: Fix | None = None


LINE_CAP = 4096  # characters of a line the diagnosis reads: vLLM's messages are far shorter
MAX_TOKENS = 10**8  # beyond any model's context
MAX_GIB = 1e6  # beyond any GPU's memory


def _num(text: str, high: float) -> float | None:
    """A figure of the log if it is a plausible one (0 to `high`), else None."""
    digits = text.replace(",", "")
    if not digits or len(digits) > 24:  # no figure here has 24 digits
        return None
    try:
        value = float(digits)
    except ValueError:  # "1.2.3"
        return None
    return value if 0 <= value <= high else None


def _max_len(m: re.Match[str]) -> tuple[str, str, Fix | None]:
    cause = "The KV cache cannot hold one request of the model's max length"
    want = _num(m.group("want"), MAX_TOKENS)
    cause += f" ({int(want)} tokens)." if want is not None else "."
    estimate = _num(m.group("est"), MAX_TOKENS)
    if estimate is None or estimate < 1:
        return cause, "Lower --max-model-len, or raise GPU memory utilization.", None
    tokens = int(estimate)
    return (
        cause,
        f"Relaunch with --max-model-len {tokens} (vLLM's estimate), or raise GPU memory "
        "utilization.",
        Fix("max_model_len", tokens, f"max model length {tokens}"),
    )


def _free_memory(m: re.Match[str]) -> tuple[str, str, Fix | None]:
    hint = "Stop the other process, or lower GPU memory utilization below the free share."
    free, total = _num(m.group("free"), MAX_GIB), _num(m.group("total"), MAX_GIB)
    if free is None or total is None or free > total:
        cause = "Not enough GPU memory is free; something else holds it"
        return cause + " (often a vLLM left over from an earlier run).", hint, None
    usable = max(0.05, round(free / total - 0.02, 2)) if total else 0.05
    fix = Fix("gpu_memory_utilization", usable, f"GPU memory utilization {usable}")
    return (
        f"Only {free:g} of {total:g} GiB is free on the GPU; something else holds the rest "
        "(often a vLLM left over from an earlier run).",
        hint,
        fix,
    )


def _bf16(m: re.Match[str]) -> tuple[str, str, Fix | None]:
    capability = f", compute capability {m.group('cap')}" if m.group("cap") else ""
    return (
        f"This GPU ({m.group('gpu')}{capability}) cannot compute in bfloat16, the model's dtype.",
        "Relaunch with --dtype half (float16); the weights are converted as they load.",
        Fix("dtype", "half", "dtype half (float16)"),
    )


def _tp_heads(m: re.Match[str]) -> tuple[str, str, Fix | None]:
    heads, size = _num(m.group("heads"), 1e6), _num(m.group("tp"), 1e4)
    if heads is None or size is None or heads < 1:
        cause = "The tensor parallel size does not divide the model's attention heads."
        return cause, "Use a tensor parallel size that divides the number of heads.", None
    cause = f"The model's {int(heads)} attention heads cannot be split over {int(size)} GPUs."
    # Powers of two only: the weights' other dimensions must split too, and they rarely
    # divide by 3 or 7 even where the heads do.
    fits = [1 << k for k in range(7) if heads % (1 << k) == 0]
    below = max((d for d in fits if d < size), default=1)
    sizes = ", ".join(map(str, fits))
    hint = f"Use a tensor parallel size that divides {int(heads)}, a power of two: {sizes}."
    return cause, hint, Fix("tensor_parallel_size", below, f"tensor parallel size {below}")


def _quant_gpu(m: re.Match[str]) -> tuple[str, str, Fix | None]:
    low, have = _num(m.group("min"), 1e4), _num(m.group("cur"), 1e4)
    need = f" {low / 10:.1f} or newer" if low is not None else " newer than this one"
    this = f"; this one has {have / 10:.1f}" if have is not None else ""
    return (
        f"{m.group('method')} quantization needs a GPU of compute capability{need}{this}.",
        "Serve another quantization of the model (AWQ runs from capability 7.5, GPTQ from "
        "6.0) or the unquantized one.",
        None,
    )


Builder = Callable[[re.Match[str]], tuple[str, str, "Fix | None"]]


def _static(cause: str, hint: str) -> Builder:
    """A finding with no fix; `{group}` in the cause is filled from the pattern's match."""

    def build(m: re.Match[str]) -> tuple[str, str, Fix | None]:
        return cause.format_map(m.groupdict()), hint, None

    return build


RULES: tuple[tuple[str, re.Pattern[str], Builder], ...] = (
    (
        "max-model-len",
        # The gap is bounded and stops at the next "max seq len (": a bare `.*?` rescanned the
        # whole rest of the log from each of them (a 100 KB line of them took 35 s).
        re.compile(
            r"max seq len \((?P<want>\d+)\)(?:(?!max seq len \().){0,600}?"
            r"estimated maximum model length is (?P<est>[\d,]+)",
            re.S,
        ),
        _max_len,
    ),
    (
        "free-memory",
        re.compile(
            r"Free memory on device \S+ \((?P<free>[\d.]+)/(?P<total>[\d.]+) GiB\) on "
            r"startup is less than desired GPU memory utilization"
        ),
        _free_memory,
    ),
    (
        "oom",
        re.compile(r"(torch\.(cuda\.)?OutOfMemoryError|CUDA out of memory)"),
        _static(
            "The GPU ran out of memory.",
            "Lower GPU memory utilization or max model length, use a quantized model, or "
            "raise tensor parallel size.",
        ),
    ),
    (
        "no-kv-blocks",
        re.compile(r"No available memory for the cache blocks"),
        _static(
            "No memory is left for the KV cache after loading the weights.",
            "Raise GPU memory utilization, or use a smaller or quantized model.",
        ),
    ),
    (
        "max-len-too-long",
        re.compile(r"User-specified max_model_len \((?P<want>\d+)\) is greater than the derived"),
        _static(
            "The max model length asked for is longer than the model supports.",
            "Lower --max-model-len to the model's context length.",
        ),
    ),
    (
        "inductor",
        re.compile(r"duplicate template name"),
        _static(
            "torch's compiler (inductor) failed.",
            "Relaunch in safe mode: TORCHDYNAMO_DISABLE=1, TORCH_COMPILE_DISABLE=1, "
            "--enforce-eager.",
        ),
    ),
    (
        "bf16-gpu",
        re.compile(
            r"Bfloat16 is only supported on GPUs with compute capability of at least 8\.0\. "
            r"Your (?P<gpu>[^\n]{1,100}?) GPU (?:has compute capability "
            r"(?P<cap>\d{1,3}(?:\.\d{1,3})?)|does not have a compute capability)"
        ),
        _bf16,
    ),
    (
        "remote-code",
        re.compile(
            r"contains custom code which must be executed|requires you to execute the "
            r"configuration file|consider setting .trust_remote_code=True."
        ),
        _static(
            "The model comes with its own Python code, which runs only when trusted.",
            "Read the model's .py files, then relaunch with --trust-remote-code.",
        ),
    ),
    (
        "tp-heads",
        re.compile(
            r"Total number of attention heads \((?P<heads>\d{1,12})\) must be divisible by "
            r"tensor parallel size \((?P<tp>\d{1,12})\)"
        ),
        _tp_heads,
    ),
    (
        "world-size",
        re.compile(
            r"World size \((?P<world>\d{1,6})\) is larger than the number of available GPUs "
            r"\((?P<gpus>\d{1,6})\)"
        ),
        _static(
            "This launch needs {world} GPUs (tensor x pipeline parallel size) but sees {gpus}.",
            "Lower the tensor (or pipeline) parallel size to the GPUs there are, or give the "
            "server more GPUs.",
        ),
    ),
    (
        "quant-gpu",
        re.compile(
            r"The quantization method (?P<method>[\w-]{1,40}) is not supported for the "
            r"current GPU\. Minimum capability: (?P<min>\d{1,12})\. Current capability: "
            r"(?P<cur>\d{1,12})"
        ),
        _quant_gpu,
    ),
    (
        "architecture",
        re.compile(r"Model architectures \[(?P<archs>[^\]\n]{0,300})\] are not supported for now"),
        _static(
            "This vLLM cannot run the model's architecture ({archs}).",
            "Upgrade vLLM (each release adds architectures; the model card often names the "
            "version it needs).",
        ),
    ),
    (
        "gated",
        re.compile(r"GatedRepoError|Cannot access gated repo"),
        _static(
            "The model is gated on the hub: it needs an accepted license and a token.",
            "Accept its license on the model's hub page, log in (hf auth login) or set "
            "HF_TOKEN, and launch again; or download it first.",
        ),
    ),
    (
        "repo-not-found",
        re.compile(r"RepositoryNotFoundError|Repository Not Found for url"),
        _static(
            "The hub has no model by this id, or it is private.",
            "Check the id (ORG/NAME, as on the hub); for a private model log in "
            "(hf auth login) or set HF_TOKEN.",
        ),
    ),
    (
        "hub-unreachable",
        re.compile(
            r"couldn't connect to 'https?://|Max retries exceeded with url: /api/models/|"
            r"OfflineModeIsEnabled|LocalEntryNotFoundError"
        ),
        _static(
            "The model hub cannot be reached.",
            "Use a local path, set HF_ENDPOINT to a mirror you can reach, download from "
            "ModelScope instead (VLLM_CONSOLE_HUB=modelscope, which launches with "
            "VLLM_USE_MODELSCOPE=True), or download the model first.",
        ),
    ),
    (
        "port-in-use",
        re.compile(r"\[Errno 98\]|address already in use", re.I),
        _static("The port is already in use.", "Stop what holds it, or choose another port."),
    ),
    (
        "gguf-unsupported",
        # vLLM without GGUF support hands the file to transformers as a config.json
        re.compile(r"config file at '[^'\n]{0,4096}\.gguf' is not a valid JSON file", re.I),
        _static(
            "This vLLM cannot load GGUF files: GGUF support left vLLM's core and comes with "
            "the vllm-gguf-plugin package, built for CUDA or ROCm GPUs.",
            "Install it into vLLM's environment (pip install vllm-gguf-plugin), or serve "
            "the original safetensors model instead.",
        ),
    ),
    (
        "gguf-architecture",
        re.compile(r"GGUF model with architecture \S{1,100} is not supported"),
        _static(
            "vLLM cannot map this GGUF architecture onto its models.",
            "Serve the original safetensors model, or a GGUF of an architecture vLLM lists "
            "as supported.",
        ),
    ),
)


def diagnose(lines: Iterable[str]) -> list[Finding]:
    """Findings in the order first seen; each rule reported once (its first occurrence)."""
    text_lines = list(lines)
    joined = "\n".join(line[:LINE_CAP] for line in text_lines[-2000:])
    found: list[Finding] = []
    for name, pattern, build in RULES:
        match = pattern.search(joined)
        if match is None:
            continue
        cause, hint, fix = build(match)
        line = match.group(0).splitlines()[0][:300]
        found.append(Finding(name, cause, hint, line, fix))
    order = {f.rule: joined.find(f.line) for f in found}
    return sorted(found, key=lambda f: order[f.rule])
