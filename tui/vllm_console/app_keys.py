"""The main screen's keys: what each does, in one line for the footer and in full (the
tooltip) for the help screen and hover. Actions that do not apply are disabled by the App's
`check_action`."""

from __future__ import annotations

from textual.binding import Binding

APP_BINDINGS: tuple[Binding, ...] = (
    Binding(
        "slash",
        "filter",
        "Filter",
        id="filter",
        tooltip="Type to narrow the model table; enter or ↓ returns to it, escape clears",
    ),
    Binding(
        "r",
        "rescan",
        "Rescan",
        id="rescan",
        tooltip="Look for models again (the Hugging Face and ModelScope caches, the model folders)",
    ),
    Binding(
        "d",
        "download",
        "Download",
        id="download",
        tooltip="Download a model from the hub or HF_ENDPOINT's mirror",
    ),
    Binding(
        "s",
        "server('stop')",
        "Stop",
        id="stop",
        tooltip="Stop the selected server: SIGTERM, a grace period, then SIGKILL of its "
        "process group; the others keep running",
    ),
    Binding(
        "S",
        "server('stop_all')",
        "Stop all",
        id="stop_all",
        tooltip="Stop every server of the fleet (asks first when more than one runs)",
    ),
    Binding(
        "R",
        "server('relaunch')",
        "Relaunch",
        id="relaunch",
        tooltip="Launch the selected server again with its last settings (stopped first)",
    ),
    Binding(
        "l",
        "show_log",
        "Log",
        id="log",
        tooltip="The servers tab: the fleet's table, and the selected server's phase, "
        "diagnosis and live log",
    ),
    Binding(
        "c",
        "show_chat",
        "Chat",
        id="chat",
        tooltip="The chat tab: talk to the selected server (it follows the selected row)",
    ),
    Binding(
        "m",
        "show_pane('tab-metrics')",
        "Metrics",
        id="metrics",
        tooltip="The metrics tab: the selected server's /metrics, read while the tab is shown",
    ),
    Binding(
        "b",
        "show_pane('tab-bench')",
        "Bench",
        show=False,  # the footer is full at 120 columns; the tab's own title shows it
        id="bench",
        tooltip="The bench tab: load-test the selected server over concurrency levels, "
        "plotted beside an earlier run; escape cancels a run",
    ),
    Binding(
        "f",
        "server('relaunch_fix')",
        "Fix",
        id="fix",
        tooltip="After a failure with a known fix: the launch dialog with that field changed",
    ),
    Binding("h", "history", "Runs", id="history", tooltip="Past runs and their logs"),
    Binding(
        "e",
        "server('add_endpoint')",
        "Endpoint",
        show=False,
        id="add_endpoint",
        tooltip="Add a server that runs elsewhere (its URL) to the fleet: watched, never stopped",
    ),
    Binding(
        "W",
        "server('save_fleet')",
        "Save fleet",
        show=False,
        id="save_fleet",
        tooltip="Write every server to a fleet file (vllm-console --fleet FILE opens it)",
    ),
    Binding(
        "question_mark",
        "help",
        "Help",
        id="help",
        tooltip="This screen: every key, pane by pane",
    ),
    Binding(
        "q",
        "quit",
        "Quit",
        id="quit",
        tooltip="Leave the console (asks first while servers run)",
    ),
    # Out of the chat's prompt (or any pane) back to the model table: keys work again.
    Binding(
        "escape",
        "focus_models",
        "Models",
        show=False,
        id="models",
        tooltip="Back to the model table from the chat prompt or any pane",
    ),
)
