"""The server log view: buffered writes, filters, and long lines folded to the view's width."""

from __future__ import annotations

from textual.app import App, ComposeResult

from vllm_console.widgets.server.log_view import INDENT, BufferedLog, fold

LONG = "INFO 11-26 17:16:08 [api_server.py:1234] " + "".join(f"w{i:02d} " for i in range(30))


def test_fold_cuts_long_lines_and_indents_the_rest() -> None:
    rows = fold(["short", "x" * 45], 20)
    assert rows == ["short", "x" * 20, INDENT + "x" * 18, INDENT + "x" * 7]
    assert fold(["x" * 45], 10) == ["x" * 45]  # too narrow to be laid out: left alone
    words = "alpha beta gamma delta epsilon zeta eta theta"
    assert fold([words], 20) == [
        "alpha beta gamma",
        INDENT + "delta epsilon zeta",
        INDENT + "eta theta",
    ]
    assert all(len(row) <= 20 for row in fold([words], 20))
    lines = ["a", "b"]
    assert fold(lines, 80) is lines  # nothing too long: the same list, no copy


class LogHost(App[None]):
    CSS = "BufferedLog { width: 52; height: 20; }"

    def compose(self) -> ComposeResult:
        yield BufferedLog(id="log")


async def test_long_lines_fold_to_the_width_and_refold_on_resize() -> None:
    app = LogHost()
    async with app.run_test(size=(80, 24)) as pilot:
        log = app.query_one(BufferedLog)
        await pilot.pause()
        width = log.content_region.width - log.styles.scrollbar_size_vertical
        log.feed(["ready", LONG, "WARNING " + LONG])
        log.flush()
        await pilot.pause()
        assert log.lines[0] == "ready" and LONG.startswith(log.lines[1])
        assert width - 4 <= len(log.lines[1]) <= width  # cut at a space near the edge
        assert all(len(row) <= width for row in log.lines)
        assert " ".join(row.removeprefix(INDENT) for row in log.lines[1:]).startswith(LONG.strip())
        assert log.virtual_size.width <= log.content_region.width  # no sideways scrolling
        assert log.all_lines == ["ready", LONG, "WARNING " + LONG]  # what was said, whole
        narrow_rows = len(log.lines)
        log.problems_only = True  # a filter shows the whole folded line
        await pilot.pause()
        assert ("WARNING " + LONG).startswith(log.lines[0]) and len(log.lines) > 1
        log.problems_only = False
        log.styles.width = 72
        await pilot.pause()
        wider = log.content_region.width - log.styles.scrollbar_size_vertical
        assert wider > width and wider - 4 <= len(log.lines[1]) <= wider
        assert len(log.lines) < narrow_rows
