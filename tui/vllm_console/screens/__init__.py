"""Screens and dialogs pushed over the main screen, each with its `.tcss` beside it; also the
dialog maker the server controller gets from the App (`dialogs`).

May import: widgets, controllers, core, textual. Never the App.
"""
