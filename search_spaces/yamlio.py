"""YAML reading that remembers where each value came from, so errors can name the line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import SpaceError, first_line
from .files import read_text

#: Bounds on what the tool reads from a YAML (or JSON) file: the files it reads are small, so a file past
#: them is hostile or a mistake, refused in one line before it can take much memory or time. Aliases
#: are resolved by reference while composing, and only expanded into Python values here, node by node,
#: so a "billion laughs" file stops at MAX_NODES instead of growing to gigabytes.
MAX_FILE_BYTES = 1 << 20
MAX_NODES = 50_000  # the largest space file holds about 1,000 values, a run file a few hundred
MAX_DEPTH = 64
MAX_NUMBER_CHARS = 40  # a number longer than this is no count, ratio or latency of this tool
_NUMBER_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")


class _Builder:
    """Python values from a composed YAML node graph, with bounds (see the module constants)."""

    def __init__(self, lines: dict[tuple, int]):
        self.lines, self.nodes = lines, 0

    def build(self, node: yaml.Node, path: tuple, depth: int = 0) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise SpaceError(
                f"line {node.start_mark.line + 1}: more than {MAX_NODES:,} values (aliases expanded): not a file of this tool"
            )
        if depth > MAX_DEPTH:
            raise SpaceError(f"line {node.start_mark.line + 1}: nested more than {MAX_DEPTH} levels deep")
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise SpaceError(f"line {key_node.start_mark.line + 1}: a key must be a plain value")
                key = _scalar(key_node)
                if key in out:
                    raise SpaceError(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}")
                out[key] = self.build(value_node, path + (key,), depth + 1)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(child, path + (i,), depth + 1) for i, child in enumerate(node.value)]
        return _scalar(node)


def _scalar(node: yaml.ScalarNode) -> Any:
    if node.tag == "tag:yaml.org,2002:str":
        return node.value
    if node.tag in _NUMBER_TAGS and len(node.value) > MAX_NUMBER_CHARS:
        raise SpaceError(f"line {node.start_mark.line + 1}: a number of {len(node.value):,} characters is out of range")
    try:
        return yaml.SafeLoader(yaml.serialize(node)).get_single_data()
    except (yaml.YAMLError, ValueError, OverflowError) as exc:
        raise SpaceError(f"line {node.start_mark.line + 1}: cannot read {node.value[:40]!r} ({exc})") from None


def load_text(text: str, source: str) -> tuple[Any, dict[tuple, int]]:
    """Parse YAML (or JSON, a subset of it) and return (data, {path: line}); bounded (see MAX_FILE_BYTES)."""
    if len(text) > MAX_FILE_BYTES:
        raise SpaceError(f"{source}: {len(text):,} characters, more than the {MAX_FILE_BYTES:,} a file of this tool holds")
    if _flow_depth(text) > MAX_DEPTH:  # the parser recurses per level: refuse before it starts
        raise SpaceError(f"{source}: nested more than {MAX_DEPTH} levels deep")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or first_line(exc)
        raise SpaceError(f"{source}{where}: malformed YAML: {problem}") from None
    except RecursionError:
        raise SpaceError(f"{source}: nested too deeply to be a file of this tool") from None
    if node is None:
        raise SpaceError(f"{source}: the file is empty")
    lines: dict[tuple, int] = {}
    try:
        data = _Builder(lines).build(node, ())
    except SpaceError as exc:
        raise SpaceError(f"{source} {exc}") from None
    return data, lines


def _flow_depth(text: str) -> int:
    """The deepest nesting of flow brackets (``[`` and ``{``), outside quoted strings."""
    depth = deepest = 0
    quote = ""
    for char in text:
        if quote:
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_DEPTH:
                    return deepest
        elif char in "]}":
            depth -= 1
    return deepest


def load_data(text: str, source: str, error: type[SpaceError] | Any = SpaceError) -> Any:
    """The plain data of a YAML (or JSON) text, bounded as :func:`load_text`; `error` (an InputError
    class) for a file that cannot be read."""
    try:
        return load_text(text, source)[0]
    except SpaceError as exc:
        if error is SpaceError:
            raise
        raise error(str(exc)) from None


def load_file(path: str | Path) -> tuple[Any, dict[tuple, int]]:
    return load_text(read_text(path, error=SpaceError), str(path))


def where(source: str, lines: dict[tuple, int], path: tuple) -> str:
    """'file line N: a.b[2]' for error messages; falls back to the nearest known parent."""
    probe = path
    while probe and probe not in lines:
        probe = probe[:-1]
    line = lines.get(probe)
    dotted = ""
    for part in path:
        dotted += f"[{part}]" if isinstance(part, int) else (f".{part}" if dotted else str(part))
    prefix = f"{source} line {line}" if line else source
    return f"{prefix}: {dotted}" if dotted else prefix


def dump_yaml(data: Any) -> str:
    """Compact YAML: nested lists of scalars on one line, like the architecture files in the README."""

    class _Dumper(yaml.SafeDumper):
        pass

    def _represent_list(dumper: yaml.SafeDumper, value: list) -> yaml.Node:
        flat = all(not isinstance(v, (dict,)) for v in value)
        return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flat)

    _Dumper.add_representer(list, _represent_list)
    _Dumper.add_representer(tuple, _represent_list)
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=200)
