"""The metrics panel: a vLLM server's /metrics while the tab is shown."""
