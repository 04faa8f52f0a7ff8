"""One CSS convention: each widget's rules in NAME.tcss beside it, app.tcss only the App's."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from textual.app import App
from textual.css.stylesheet import Stylesheet
from textual.widgets import Static

import vllm_console
from tests.widgets.console_helpers import settle
from tests.widgets.package_classes import classes_defining
from vllm_console.app import VllmConsoleApp
from vllm_console.config import Settings
from vllm_console.widgets.models.details import ModelDetails

PACKAGE = Path(vllm_console.__file__).parent
APP_IDS = {"main", "browser", "side", "gpus"}  # what the App itself composes and mounts


def test_every_default_css_is_read_from_a_tcss_beside_its_class() -> None:
    owners = classes_defining("DEFAULT_CSS")
    assert owners
    for cls in owners:
        folder = Path(inspect.getfile(cls)).parent
        sources = {path.read_text(encoding="utf-8"): path for path in folder.glob("*.tcss")}
        assert vars(cls)["DEFAULT_CSS"] in sources, f"{cls.__qualname__}: inline DEFAULT_CSS"


def test_every_tcss_file_is_read_by_exactly_one_class() -> None:
    read = [vars(cls)["DEFAULT_CSS"] for cls in classes_defining("DEFAULT_CSS")]
    for path in PACKAGE.rglob("*.tcss"):
        if path == PACKAGE / "app.tcss":
            continue
        assert read.count(path.read_text(encoding="utf-8")) == 1, path


def test_app_tcss_styles_only_the_apps_own_layout() -> None:
    assert VllmConsoleApp.CSS_PATH == "app.tcss"
    stylesheet = Stylesheet(variables=App[None]().get_css_variables())
    stylesheet.add_source((PACKAGE / "app.tcss").read_text(encoding="utf-8"))
    stylesheet.parse()
    ids = {name[1:] for rule in stylesheet.rules for name in rule.selector_names if "#" in name}
    assert ids == APP_IDS, "a widget's own rules belong in the .tcss beside it"


async def title_offset(settings: Settings, demo_catalog: Any, size: tuple[int, int]) -> int:
    """Lines between the top of the details pane and the model's id in it."""
    app = VllmConsoleApp(settings, catalog=demo_catalog)
    async with app.run_test(size=size) as pilot:
        await settle(app, pilot)
        details = app.query_one(ModelDetails)
        title = details.query_one(".details-title", Static)
        assert str(title.render()) == "Qwen/Qwen2.5-7B-Instruct"
        return title.region.y - details.content_region.y


async def test_details_title_has_blank_lines_round_it_only_when_wide(
    settings: Settings, demo_catalog: Any
) -> None:
    # Stacked under the browser the pane has a dozen lines: no room to spare there.
    assert await title_offset(settings, demo_catalog, (120, 40)) == 1
    assert await title_offset(settings, demo_catalog, (80, 24)) == 0
