"""The fleet file against the real vLLM (CPU build): the shipped flag table is what
scripts/vllm_flags.py makes of this vLLM, and vLLM reads the arguments the console makes
of an entry exactly as it reads the same entry given to it as `vllm serve --config`.

One run of vLLM's Python (about 15 s: its parser imports most of vLLM) answers both.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import vllm_env
from vllm_console.config import Settings
from vllm_console.core.fleet.file import parse_fleet
from vllm_console.core.serve.spec import serve_args

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "tui" / "vllm_console" / "core" / "fleet" / "vllm_flags.json"
# Keys of vLLM only (the console's own would be unknown to it), every kind of value.
ENTRY = """\
model: /models/tiny
host: 127.0.0.1
port: 8123
gpu-memory-utilization: 0.5
max-model-len: 8k
dtype: bfloat16
served-model-name: chat
enforce-eager: true
trust_remote_code: false
enable-prefix-caching: true
enable-log-requests: false
disable-log-stats: false
headless: true
max-num-seqs: 64
cpu-offload-gb: 1.5
max-num-batched-tokens: 16k
moe-backend: Triton
lora-modules: [a=/l/a, b=/l/b]
compilation-config: {mode: 0, cudagraph_capture_sizes: [1, 2]}
hf-overrides: {rope_theta: 10000}
"""
PROBE = """
import json, runpy, sys
table = runpy.run_path(sys.argv[1])["table"]()
from vllm.entrypoints.launchers.cli_args import make_arg_parser
from vllm.utils.argparse_utils import FlexibleArgumentParser
parser = make_arg_parser(FlexibleArgumentParser(prog="vllm serve"))
from_config = parser.load_config_file(sys.argv[2])
ours = json.loads(sys.argv[3])
def parsed(args):
    found = vars(parser.parse_args(args))
    return {k: v for k, v in found.items() if k not in ("model", "model_tag")}
print(json.dumps({
    "table": table,
    "from_config": from_config,
    "same": parsed(ours) == parsed(from_config),
    "theirs": parsed(from_config),
    "ours": parsed(ours),
}, default=repr))
"""


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    env = vllm_env()
    folder = tmp_path_factory.mktemp("flags")
    config = folder / "entry.yaml"
    config.write_text(ENTRY)
    fleet = "servers:\n  tiny:\n" + textwrap.indent(ENTRY, "    ")
    spec = parse_fleet(fleet, folder / "fleet.yaml", Settings()).members[0].spec
    assert spec is not None
    out = subprocess.run(
        [
            str(env / "bin" / "python"),
            "-c",
            PROBE,
            str(ROOT / "scripts" / "vllm_flags.py"),
            str(config),
            json.dumps(serve_args(spec)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=folder,  # a clean folder first on sys.path
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_the_shipped_flag_table_is_this_vllms(probe: dict[str, Any]) -> None:
    shipped = json.loads(SHIPPED.read_text(encoding="utf-8"))
    assert probe["table"] == shipped, "run scripts/vllm_flags.py with this vLLM's Python"


def test_vllm_reads_our_arguments_as_it_reads_its_own_config(probe: dict[str, Any]) -> None:
    theirs, ours = probe["theirs"], probe["ours"]
    assert {k: v for k, v in ours.items() if theirs.get(k) != v} == {}
    assert probe["same"] is True
    assert theirs["enable_prefix_caching"] is True and theirs["max_num_seqs"] == 64
    assert "--no-enable-log-requests" in probe["from_config"]
    assert "--no-disable-log-stats" not in probe["from_config"]
