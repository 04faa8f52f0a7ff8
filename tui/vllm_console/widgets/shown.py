"""Whether a widget is shown: cheaply, for the clocks and flushes of a fleet's hidden panes.

`Widget.is_on_screen` answers from the compositor's map, and for a widget that is not on
screen it builds the map of every widget, hidden ones included, whenever anything moved: a
pane's once-a-second clock asking it cost a quiet console more than all its drawing.
"""

from __future__ import annotations

from textual.widget import Widget


def is_shown(widget: Widget) -> bool:
    """Mounted, and displayed with every container above it (a tab's inactive panes and a
    content switcher's other children are not)."""
    if not widget.is_attached:
        return False
    return all(node.display for node in widget.ancestors_with_self if isinstance(node, Widget))
