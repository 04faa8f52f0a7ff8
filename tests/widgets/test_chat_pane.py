"""The chat pane in a small host app, against the stand-in OpenAI server (tests/fakes).

Each fault of the server (slow first token, error mid-stream, malformed lines, a dropped
connection, 401, an unknown model, a long answer) ends with the partial answer kept and a
status line that says what happened; escape stops an answer and the server sees the hang-up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.widgets import Footer, Input, Select, Static

from tests.fakes.fake_openai import FakeOpenAI, word
from tests.fakes.net import free_port
from vllm_console.widgets.chat.endpoint_bar import EndpointBar
from vllm_console.widgets.chat.pane import ChatPane, ChatParams, EndpointConfig
from vllm_console.widgets.chat.parts import MessageView, PromptInput
from vllm_console.widgets.chat.settings_form import ChatSettings


class Host(App[None]):
    def __init__(self, pane: ChatPane) -> None:
        super().__init__()
        self.pane = pane
        self.finished: list[ChatPane.AnswerFinished] = []
        self.endpoints: list[ChatPane.EndpointChanged] = []

    def compose(self) -> ComposeResult:
        yield self.pane
        yield Footer()

    def on_mount(self) -> None:
        self.pane.query_one(PromptInput).focus()

    def on_chat_pane_answer_finished(self, event: ChatPane.AnswerFinished) -> None:
        self.finished.append(event)

    def on_chat_pane_endpoint_changed(self, event: ChatPane.EndpointChanged) -> None:
        self.endpoints.append(event)


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(models=("fake-model", "other-model")) as server:
        yield server


def answer(n: int) -> str:
    return "".join(word(i) for i in range(n))


async def wait_for(pilot: Any, check: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {check}")
        await pilot.pause(0.02)


def status(pane: ChatPane) -> str:
    return str(pane.query_one("#chat-status", Static).render())


def state(pane: ChatPane) -> str:
    return str(pane.query_one("#chat-endpoint-state", Static).render())


def notes(pane: ChatPane) -> str:
    return str(pane.query_one("#chat-endpoint-notes", Static).render())


def answers(pane: ChatPane) -> list[str]:
    views = pane.query(MessageView).results()
    return [v.markdown.source for v in views if v.role == "assistant"]


async def ready(pilot: Any, pane: ChatPane) -> None:
    """Until the first probe has been shown and reported."""
    await wait_for(pilot, lambda: pane.endpoint_status is not None and pilot.app.endpoints)


async def ask(pilot: Any, pane: ChatPane, text: str = "hi", timeout: float = 10.0) -> None:
    """Type `text`, press enter, wait until the answer has ended."""
    done = len(pilot.app.finished)
    await pilot.press(*text, "enter")
    await wait_for(pilot, lambda: len(pilot.app.finished) > done, timeout)
    await pilot.pause()


def pane_for(fake: FakeOpenAI, **kw: Any) -> ChatPane:
    model = kw.pop("model", None)
    key = kw.pop("api_key", None)
    return ChatPane(EndpointConfig(fake.base_url, key, model), **kw)


async def test_normal_stream_shows_answer_and_stats(fake: FakeOpenAI) -> None:
    pane = pane_for(fake, params=ChatParams(system_prompt="Be brief.", temperature=0.5))
    app = Host(pane)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot, pane)
        assert "vLLM 0.32.0" in state(pane)
        assert pane.config.model == "fake-model"  # none configured: the first served one
        await ask(pilot, pane, "hello")
        assert answers(pane) == [answer(12)]
        line = status(pane)
        for part in ("ttft ", " tok/s", "in 7", "out 12", "finish stop"):
            assert part in line, line
        body = fake.requests[-1]
        assert body["model"] == "fake-model" and body["temperature"] == 0.5
        assert body["messages"] == [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hello"},
        ]
        assert app.finished[-1].turn.stats is not None and app.finished[-1].turn.stats.ok
        await ask(pilot, pane, "again")  # the history goes with the next question
        roles = [m["role"] for m in fake.requests[-1]["messages"]]
        assert roles == ["system", "user", "assistant", "user"]


async def test_slow_first_token_is_shown_while_waiting(fake: FakeOpenAI) -> None:
    fake.mode, fake.first_token_delay = "slow_first", 0.6
    pane = pane_for(fake)
    app = Host(pane)
    async with app.run_test() as pilot:
        await ready(pilot, pane)
        await pilot.press("h", "i", "enter")
        await wait_for(pilot, lambda: "waiting for the first token" in status(pane))
        await wait_for(pilot, lambda: app.finished)
        ttft = app.finished[-1].turn.stats.ttft_s  # type: ignore[union-attr]
        assert ttft is not None and ttft >= 0.5
        assert "ttft 0.6" in status(pane) or "ttft 0.7" in status(pane)


async def test_an_answer_held_back_and_passed_on_at_once_gets_no_rate(fake: FakeOpenAI) -> None:
    fake.mode, fake.first_token_delay, fake.tokens = "buffered", 0.3, 300
    pane = pane_for(fake)
    app = Host(pane)
    async with app.run_test() as pilot:
        await ready(pilot, pane)
        await ask(pilot, pane)
        assert answers(pane) == [answer(300)]
        line = status(pane)
        assert "arrived all at once" in line and "tok/s" not in line, line
        stats = app.finished[-1].turn.stats
        assert stats is not None and stats.held_back and stats.tokens_per_s is None


@pytest.mark.parametrize(
    ("mode", "said"),
    [
        ("error_mid", "server error: EngineCore died"),
        ("drop", "closed the connection mid-answer"),
    ],
)
async def test_failure_mid_stream_keeps_partial_answer(
    fake: FakeOpenAI, mode: str, said: str
) -> None:
    fake.mode = mode
    pane = pane_for(fake)
    app = Host(pane)
    async with app.run_test() as pilot:
        await ready(pilot, pane)
        await ask(pilot, pane)
        assert answers(pane) == [answer(3)]
        assert said in status(pane) and "partial answer kept" in status(pane)
        assert said in pane.query(MessageView).last().note


async def test_malformed_lines_are_skipped_and_counted(fake: FakeOpenAI) -> None:
    fake.mode = "malformed"
    pane = pane_for(fake)
    app = Host(pane)
    async with app.run_test() as pilot:
        await ready(pilot, pane)
        await ask(pilot, pane)
        assert answers(pane) == [answer(12)]
        assert "3 malformed lines skipped" in status(pane) and "finish stop" in status(pane)


async def test_rejected_key_is_said_on_probe_and_on_send() -> None:
    with FakeOpenAI(api_key="sk-right") as fake:
        pane = pane_for(fake, model="fake-model", api_key="sk-wrong")
        app = Host(pane)
        async with app.run_test() as pilot:
            await ready(pilot, pane)
            assert "API key rejected" in state(pane)
            assert "check VLLM_API_KEY" in notes(pane)
            await ask(pilot, pane)
            assert "API key rejected (HTTP 401)" in status(pane)
            # typing the right key applies it and probes again
            key = pane.query_one("#chat-key", Input)
            key.value = "sk-right"
            await wait_for(pilot, lambda: "vLLM 0.32.0" in state(pane))
            assert "typed" in state(pane)
            await ask(pilot, pane)
            assert answers(pane)[-1] == answer(12)


async def test_unknown_model_warns_with_served_list_and_fails_calmly(fake: FakeOpenAI) -> None:
    pane = pane_for(fake, model="nope")
    app = Host(pane)
    async with app.run_test() as pilot:
        await ready(pilot, pane)
        assert "model 'nope' is not served here; served: fake-model, other-model" in notes(pane)
        select = pane.query_one("#chat-model", Select)
        assert select.value == "nope"  # kept, marked, not switched behind the user's back
        await ask(pilot, pane)
        assert "HTTP 404: The model `nope` does not exist." in status(pane)
        assert answers(pane) == [""]
        select.value = "other-model"
        await pilot.pause()
        assert pane.config.model == "other-model"
        await ask(pilot, pane)
        assert fake.requests[-1]["model"] == "other-model"
        # the failed question is still in the history; its empty answer is not sent
        roles = [m["role"] for m in fake.requests[-1]["messages"]]
        assert roles == ["user", "user"]


async def test_very_long_answer_arrives_whole(fake: FakeOpenAI) -> None:
    fake.tokens = 5000
    pane = pane_for(fake)
    app = Host(pane)
    async with app.run_test() as pilot:
        await ready(pilot, pane)
        await ask(pilot, pane, timeout=30)
        assert answers(pane) == [answer(5000)]
        assert "out 5000" in status(pane)


async def test_length_finish_is_flagged(fake: FakeOpenAI) -> None:
    pane = pane_for(fake, params=ChatParams(max_tokens=5))
    app = Host(pane)
    async with app.run_test() as pilot:
        await ready(pilot, pane)
        await ask(pilot, pane)
        assert fake.requests[-1]["max_tokens"] == 5
        assert "⚠ finish length" in status(pane)
        assert "cut at max tokens" in pane.query(MessageView).last().note


async def test_escape_stops_the_answer_and_the_server_sees_it(fake: FakeOpenAI) -> None:
    fake.mode, fake.token_delay = "endless", 0.01
    pane = pane_for(fake)
    app = Host(pane)
    async with app.run_test() as pilot:
        await ready(pilot, pane)
        await pilot.press("h", "i", "enter")
        await wait_for(pilot, lambda: len(answers(pane)[-1].split()) >= 5)
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.finished)
        assert await asyncio.to_thread(fake.hangups.wait, 5)
        turn = app.finished[-1].turn
        assert turn.stopped and turn.content and answers(pane)[-1] == turn.content
        assert "stopped by you" in status(pane) and "partial answer kept" in status(pane)
        assert not pane.busy


async def test_settings_are_editable_and_checked(fake: FakeOpenAI) -> None:
    pane = pane_for(fake)
    app = Host(pane)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot, pane)
        await pilot.press("ctrl+t")
        settings = pane.query_one(ChatSettings)
        assert not settings.collapsed
        pane.query_one("#chat-temperature", Input).value = "0.2"
        pane.query_one("#chat-top-p", Input).value = "0.9"
        pane.query_one("#chat-max-tokens", Input).value = "64"
        pane.query_one("#chat-system", Input).value = "You are terse."
        await pilot.pause()
        assert pane.params == ChatParams("You are terse.", 0.2, 0.9, 64)
        assert "temperature 0.2" in settings.title and "max tokens 64" in settings.title
        pane.query_one("#chat-temperature", Input).value = "7"
        await pilot.pause()
        assert settings.errors and "temperature" in settings.errors[0]
        pane.query_one(PromptInput).focus()
        await pilot.press("h", "i", "enter")
        await pilot.pause()
        assert "fix the settings first" in status(pane) and not fake.requests
        pane.query_one("#chat-temperature", Input).value = "0.3"
        await pilot.pause()
        pane.query_one(PromptInput).focus()
        await ask(pilot, pane, "")  # the text is still in the prompt
        body = fake.requests[-1]
        assert (body["temperature"], body["top_p"], body["max_tokens"]) == (0.3, 0.9, 64)
        assert body["messages"][0] == {"role": "system", "content": "You are terse."}


async def test_input_history_walks_with_up_and_down(fake: FakeOpenAI) -> None:
    pane = pane_for(fake)
    app = Host(pane)
    async with app.run_test() as pilot:
        await ready(pilot, pane)
        await ask(pilot, pane, "first")
        await ask(pilot, pane, "second")
        prompt = pane.query_one(PromptInput)
        assert prompt.value == ""
        await pilot.press("d", "r", "a", "f", "t", "up")
        assert prompt.value == "second"
        await pilot.press("up")
        assert prompt.value == "first"
        await pilot.press("up")
        assert prompt.value == "first"
        await pilot.press("down")
        assert prompt.value == "second"
        await pilot.press("down")
        assert prompt.value == "draft"


async def test_clear_export_and_copy(
    fake: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pane = pane_for(fake, export_dir=tmp_path / "exports")
    app = Host(pane)
    copied: list[str] = []
    monkeypatch.setattr(app, "copy_to_clipboard", copied.append)
    async with app.run_test() as pilot:
        await ready(pilot, pane)
        assert app.active_bindings["ctrl+y"].enabled is False  # nothing to copy yet
        await ask(pilot, pane, "tell me")
        await pilot.press("ctrl+y")
        assert copied == [answer(12)]
        await pilot.press("ctrl+s")
        await app.workers.wait_for_complete()
        files = list((tmp_path / "exports").glob("chat-*.md"))
        assert len(files) == 1
        text = files[0].read_text()
        assert text.startswith("# Chat with fake-model")
        assert "## You\n\ntell me" in text and answer(12).strip() in text
        assert "finish stop" in text and fake.base_url in text
        await pilot.press("ctrl+l")
        await pilot.pause()
        assert not pane.turns and not pane.query(MessageView)
        assert "Type a message" in status(pane)


async def test_model_selector_lists_served_models_and_choosing_one_applies(
    fake: FakeOpenAI,
) -> None:
    pane = pane_for(fake)
    app = Host(pane)
    async with app.run_test() as pilot:
        await ready(pilot, pane)
        select = pane.query_one("#chat-model", Select)
        assert [value for _, value in select._options if isinstance(value, str)] == [
            "fake-model",
            "other-model",
        ]
        select.value = "other-model"
        await pilot.pause()
        assert app.endpoints[-1].config.model == "other-model"
        await ask(pilot, pane)
        assert fake.requests[-1]["model"] == "other-model"


async def test_not_vllm_is_told_apart(fake: FakeOpenAI) -> None:
    fake.vllm = False
    pane = pane_for(fake)
    app = Host(pane)
    async with app.run_test() as pilot:
        await ready(pilot, pane)
        assert "OpenAI-compatible" in state(pane)
        assert "not a vLLM server" in notes(pane)
        status_ = app.endpoints[-1].status
        assert status_ is not None and not status_.is_vllm


async def test_reasoning_is_shown_apart_from_the_answer(fake: FakeOpenAI) -> None:
    fake.mode = "reasoning"
    pane = pane_for(fake)
    app = Host(pane)
    async with app.run_test() as pilot:
        await ready(pilot, pane)
        await ask(pilot, pane)
        assert answers(pane) == [answer(12)]
        thoughts = pane.query(".message-reasoning").last()
        assert thoughts.source == "think0 think1 "  # type: ignore[attr-defined]


async def test_unreachable_is_calm_and_retry_finds_the_server() -> None:
    port = free_port()
    pane = ChatPane(EndpointConfig(f"http://127.0.0.1:{port}/v1", None, "fake-model"))
    app = Host(pane)
    async with app.run_test() as pilot:
        await ready(pilot, pane)
        assert "unreachable" in state(pane) and "ctrl+r" in state(pane)
        assert "No endpoint at" in notes(pane) and "connection refused" in notes(pane)
        assert not app._notifications  # a state, not an error dialog
        await ask(pilot, pane)
        assert "cannot connect" in status(pane)
        with FakeOpenAI(port=port):
            await pilot.press("ctrl+r")
            await wait_for(pilot, lambda: "vLLM 0.32.0" in state(pane))
            await ask(pilot, pane)
            assert answers(pane)[-1] == answer(12)


async def test_point_at_repoints_and_names_the_source(fake: FakeOpenAI) -> None:
    pane = ChatPane(EndpointConfig(f"http://127.0.0.1:{free_port()}/v1"))
    app = Host(pane)
    async with app.run_test() as pilot:
        await ready(pilot, pane)
        pane.point_at(fake.base_url, None, "other-model", source="local server")
        await wait_for(pilot, lambda: "vLLM 0.32.0" in state(pane))
        assert "local server" in state(pane)
        assert pane.query_one("#chat-url", Input).value == fake.base_url
        assert pane.config.model == "other-model"
        await pilot.pause()
        assert app.endpoints[-1].config.source == "local server"
        await ask(pilot, pane)
        assert fake.requests[-1]["model"] == "other-model"


async def test_typed_url_applies_and_reprobes(fake: FakeOpenAI) -> None:
    pane = ChatPane(EndpointConfig(f"http://127.0.0.1:{free_port()}/v1", None, "fake-model"))
    app = Host(pane)
    async with app.run_test() as pilot:
        await ready(pilot, pane)
        url = pane.query_one("#chat-url", Input)
        url.focus()
        url.value = ""
        await pilot.press(*fake.base_url)
        await wait_for(pilot, lambda: "vLLM 0.32.0" in state(pane))
        assert pane.query_one(EndpointBar).config.base_url == fake.base_url
        assert pane.config.source == "typed"


async def test_clear_while_streaming_stops_first(fake: FakeOpenAI) -> None:
    fake.mode, fake.token_delay = "endless", 0.01
    pane = pane_for(fake)
    app = Host(pane)
    async with app.run_test() as pilot:
        await ready(pilot, pane)
        await pilot.press("h", "i", "enter")
        await wait_for(pilot, lambda: pane.busy and answers(pane) and answers(pane)[-1])
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: not pane.busy and not pane.query(MessageView))
        assert await asyncio.to_thread(fake.hangups.wait, 5)
        assert not pane.turns and "Type a message" in status(pane)
