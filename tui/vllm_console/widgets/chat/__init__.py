"""The chat pane: endpoint bar, messages, prompt, parameters and their state."""
