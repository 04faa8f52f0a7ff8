"""YAML from a user's file, read as nodes that know their line, and nothing more.

PyYAML's own composer is recursive (a file of 100,000 `[` is a RecursionError), expands
aliases into a graph a walk would follow for ever (`&a [*a]`) or a billion times (the
"billion laughs"), and its loaders construct Python objects from tags. So the events of
YAML's parser (libyaml's when present: the C parser is also ten times faster) are
composed here, without recursion: an alias is refused where it stands, nesting deeper
than DEPTH_LIMIT or more than NODE_LIMIT values are refused too, and a scalar becomes a
value (`value`) only for the tags plain YAML has (null, bool, int, float, str).
"""

from __future__ import annotations

import math
import re
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    CollectionStartEvent,
    MappingStartEvent,
    NodeEvent,
    ScalarEvent,
    SequenceStartEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

NODE_LIMIT = 20_000  # a fleet of a hundred servers has a few thousand
DEPTH_LIMIT = 32  # an entry's deepest value (a JSON config) is a few levels down
DIGITS_LIMIT = 40  # far past any port, size or seed; int() of a long one costs seconds
_PREFIX = "tag:yaml.org,2002:"
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_RESOLVER: Any = yaml.resolver.Resolver()
_CONSTRUCTOR = yaml.constructor.SafeConstructor()
# What YAML allows in a stream (YAML 1.1, 5.1): a file with anything else is not YAML.
_NOT_YAML = re.compile("[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class YamlError(Exception):
    """Not YAML we read: what is wrong, and the line (1-based) where it is."""

    def __init__(self, line: int, what: str) -> None:
        super().__init__(f"line {line}: {what}")
        self.line, self.what = line, what


def line_of(node: Node | yaml.Event) -> int:
    """The line (1-based) where a node or event starts."""
    return _line(node.start_mark)


def _line(mark: Any) -> int:
    return int(mark.line) + 1 if mark is not None else 1


def compose(text: str) -> Node | None:
    """The one document in `text` as nodes (None: no document); YamlError if it is not
    YAML, holds an alias, more than one document, or too many or too deep values."""
    bad = _NOT_YAML.search(text)
    if bad:
        line = text.count("\n", 0, bad.start()) + 1
        raise YamlError(line, f"character {bad.group()!a} is not allowed in YAML")
    try:
        return _compose_events(yaml.parse(text, Loader=_Loader))
    except yaml.MarkedYAMLError as exc:
        line = _line(exc.problem_mark or exc.context_mark)
        raise YamlError(line, exc.problem or exc.context or "not YAML") from None
    except yaml.YAMLError as exc:  # a reader error: no mark, the text is known good
        raise YamlError(1, str(exc).splitlines()[0]) from None


def _compose_events(events: Any) -> Node | None:
    root: Node | None = None
    stack: list[tuple[Node, list[Any]]] = []
    pending_key: list[Node | None] = []
    count = 0
    for event in events:
        if isinstance(event, yaml.DocumentStartEvent) and root is not None:
            raise YamlError(line_of(event), "more than one document (---)")
        if isinstance(event, AliasEvent):
            raise YamlError(line_of(event), "aliases (*name) are not allowed")
        if isinstance(event, yaml.CollectionEndEvent):
            node, _ = stack.pop()
            pending_key.pop()
            _attach(node, stack, pending_key)
            continue
        if not isinstance(event, NodeEvent):
            continue
        count += 1
        if count > NODE_LIMIT:
            raise YamlError(line_of(event), f"more than {NODE_LIMIT:,} values")
        node = _node(event)
        if root is None:
            root = node
        if isinstance(event, CollectionStartEvent):
            if len(stack) >= DEPTH_LIMIT:
                raise YamlError(line_of(event), f"nested over {DEPTH_LIMIT} deep")
            stack.append((node, node.value))
            pending_key.append(None)
        else:
            _attach(node, stack, pending_key)
    return root


def _node(event: NodeEvent) -> Node:
    start: Any = event.start_mark
    end: Any = event.end_mark
    if isinstance(event, ScalarEvent):
        tag = event.tag
        if tag is None or tag == "!":
            tag = _RESOLVER.resolve(ScalarNode, event.value, event.implicit)
        return ScalarNode(tag, event.value, start, end, style=event.style)
    if isinstance(event, SequenceStartEvent):
        return SequenceNode(event.tag or _PREFIX + "seq", [], start, end)
    assert isinstance(event, MappingStartEvent)
    return MappingNode(event.tag or _PREFIX + "map", [], start, end)


def _attach(node: Node, stack: list[tuple[Node, list[Any]]], keys: list[Node | None]) -> None:
    if not stack:
        return
    parent, items = stack[-1]
    if isinstance(parent, SequenceNode):
        items.append(node)
    elif keys[-1] is None:
        keys[-1] = node
    else:
        items.append((keys[-1], node))
        keys[-1] = None


def value(node: Node) -> Any:
    """A node as plain data: None, bool, int, float, str, lists and dicts of them (keys of
    any scalar type become text). ValueError, with a reason for a person, for what has no
    such value: a tag YAML does not define, a number too long, a key that is a collection,
    a key given twice."""
    if isinstance(node, ScalarNode):
        return _scalar(node)
    if not node.tag.startswith(_PREFIX):
        raise ValueError(f"the tag {node.tag} is not plain YAML")
    if isinstance(node, SequenceNode):
        return [value(item) for item in node.value]
    result: dict[str, Any] = {}
    for key, item in node.value:
        if not isinstance(key, ScalarNode):
            raise ValueError(f"line {line_of(key)}: a key must be a single value")
        name = str(_scalar(key))
        if name in result:
            raise ValueError(f"line {line_of(key)}: the key {name!a} is given twice")
        result[name] = value(item)
    return result


def _scalar(node: ScalarNode) -> Any:
    tag = node.tag.removeprefix(_PREFIX)
    if tag in ("str", "binary", "timestamp"):  # dates and base64 are kept as written
        return node.value
    if tag in ("int", "float") and len(node.value) > DIGITS_LIMIT:
        raise ValueError(f"a number of over {DIGITS_LIMIT} characters")
    if tag == "null":
        return None
    if tag == "bool":
        return _CONSTRUCTOR.construct_yaml_bool(node)
    if tag == "int":
        return _CONSTRUCTOR.construct_yaml_int(node)
    if tag == "float":
        number = _CONSTRUCTOR.construct_yaml_float(node)
        if not math.isfinite(number):
            raise ValueError("not a finite number")
        return number
    raise ValueError(f"the tag {node.tag} is not plain YAML")
