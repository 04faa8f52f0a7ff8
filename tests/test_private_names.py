"""No leading-underscore name is used outside its own module.

An AST check over the package, the tests, the benchmarks and the scripts. It fails on

- `from M import _x`, whatever M is (a library's private names go through
  `vllm_console.compat`, the one module, with its test, allowed to import them);
- an import of a module whose path has a private part (`textual.widgets._footer`), outside
  compat: ruff's banned-api rule (TID251) names such modules one by one and cannot say
  "every `textual._*`", so this is the catch-all;
- `M._x` where M is one of this project's modules (imported as `import M`, `import M as m`,
  `from P import m`).

Dunder names (`__version__`, `__file__`) are public. `obj._x` on an object that is not a
module (`self._x`, `app._notifications`) is ordinary Python and not looked at.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("tui/vllm_console", "tests", "bench", "scripts")
# The only places a library's private name may be imported: compat and its own test.
COMPAT = {"tui/vllm_console/compat.py", "tests/test_compat.py"}


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_path(dotted: str) -> bool:
    return any(is_private(part) for part in dotted.split("."))


def project_module(dotted: str) -> bool:
    """Whether `dotted` names a module of this project (the package, tests, bench)."""
    parts = dotted.split(".")
    for base in (ROOT / "tui", ROOT):
        path = base.joinpath(*parts)
        if path.with_suffix(".py").is_file() or (path / "__init__.py").is_file():
            return True
    return False


def module_of(rel: str) -> str:
    """The dotted name of a source file (`tui/vllm_console/a/b.py` -> `vllm_console.a.b`)."""
    dotted = rel.removeprefix("tui/").removesuffix(".py").replace("/", ".")
    return dotted.removesuffix(".__init__")


def absolute(node: ast.ImportFrom, rel: str) -> str:
    """The module an ImportFrom names, relative imports resolved against the file `rel`."""
    if not node.level:
        return node.module or ""
    package = module_of(rel).split(".")
    if not rel.endswith("__init__.py"):
        package = package[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join([*base, *([node.module] if node.module else [])])


def dotted_name(node: ast.expr) -> str | None:
    """`a.b.c` for a chain of attributes on a name; None for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = dotted_name(node.value)
        return None if head is None else f"{head}.{node.attr}"
    return None


def violations(source: str, rel: str) -> Iterator[str]:
    """Each use of a private name outside its module in one file, as `path:line: what`."""
    tree = ast.parse(source, rel)
    modules: dict[str, str] = {}  # local name -> the project module it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                in_project = project_module(alias.name)
                if private_path(alias.name) and (in_project or rel not in COMPAT):
                    yield f"{rel}:{node.lineno}: import {alias.name}"
                if not in_project:
                    continue
                if alias.asname:
                    modules[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    modules[top] = top
        elif isinstance(node, ast.ImportFrom):
            source_module = absolute(node, rel)
            in_project = project_module(source_module)
            if private_path(source_module) and (in_project or rel not in COMPAT):
                yield f"{rel}:{node.lineno}: from {source_module} import ..."
            for alias in node.names:
                if is_private(alias.name) and (in_project or rel not in COMPAT):
                    yield f"{rel}:{node.lineno}: from {source_module} import {alias.name}"
                full = f"{source_module}.{alias.name}"
                if project_module(full):
                    modules[alias.asname or alias.name] = full
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and is_private(node.attr)):
            continue
        owner = dotted_name(node.value)
        if owner is None:
            continue
        head, _, rest = owner.partition(".")
        if head not in modules:
            continue
        module = modules[head] + (f".{rest}" if rest else "")
        if project_module(module):
            yield f"{rel}:{node.lineno}: {module}.{node.attr}"


def source_files() -> Iterator[tuple[Path, str]]:
    for folder in SOURCES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            yield path, path.relative_to(ROOT).as_posix()


def test_no_private_name_is_used_outside_its_module() -> None:
    found = [v for path, rel in source_files() for v in violations(path.read_text(), rel)]
    assert found == [], "private names used outside their module:\n" + "\n".join(found)


def test_the_check_sees_each_kind() -> None:
    """The check above would see a use: prove it on code that has each kind."""
    code = (
        "import vllm_console.core.catalog.hfcache\n"
        "import vllm_console.core.catalog.hfwalk as walk\n"
        "from vllm_console.core.catalog import scan\n"
        "import textual._context\n"
        "from vllm_console.core.catalog.scan import _detail\n"
        "from huggingface_hub.utils._headers import build_hf_headers\n"
        "from textual.widgets._footer import _private\n"
        "from . import entry\n"
        "vllm_console.core.catalog.hfcache._pick\n"
        "walk._MEMO\n"
        "scan._finish\n"
        "entry._ENTRY_DEFAULTS\n"
        "walk.__name__, scan.list_models, self._x, app._notifications\n"
    )
    found = list(violations(code, "tui/vllm_console/core/catalog/example.py"))
    assert [v.split(": ", 1)[1] for v in found] == [
        "import textual._context",
        "from vllm_console.core.catalog.scan import _detail",
        "from huggingface_hub.utils._headers import ...",
        "from textual.widgets._footer import ...",
        "from textual.widgets._footer import _private",
        "vllm_console.core.catalog.hfcache._pick",
        "vllm_console.core.catalog.hfwalk._MEMO",
        "vllm_console.core.catalog.scan._finish",
        "vllm_console.core.catalog.entry._ENTRY_DEFAULTS",
    ]
