"""Widgets of the console; each calls core from workers and reports up by messages."""
