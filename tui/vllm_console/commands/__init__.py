"""Headless commands: each prints for people or, with --json, for scripts."""
