"""Modules short enough to read: none over 400 lines, and the App (navigation and wiring
only) under 300."""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "tui" / "vllm_console"


def lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def test_no_module_over_400_lines() -> None:
    long = {str(p.relative_to(PACKAGE)): lines(p) for p in PACKAGE.rglob("*.py") if lines(p) > 400}
    assert long == {}


def test_the_app_is_navigation_and_wiring_only() -> None:
    assert lines(PACKAGE / "app.py") < 300


def test_every_package_says_what_it_owns_and_may_import() -> None:
    for init in PACKAGE.rglob("__init__.py"):
        if init.parent == PACKAGE or init.parent.name == "commands":
            continue
        text = init.read_text(encoding="utf-8")
        assert text.startswith('"""') and "May import" in text, init.relative_to(PACKAGE)
