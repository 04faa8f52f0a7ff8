"""The server pane: one server's status line, phases, findings and live log."""
