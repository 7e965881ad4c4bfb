"""YAML reading that remembers where each value came from, so errors can name the line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import SpaceError
from .files import read_text


def _construct(node: yaml.Node, path: tuple, lines: dict[tuple, int]) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.safe_load(yaml.serialize(key_node)) if not isinstance(key_node, yaml.ScalarNode) else _scalar(key_node)
            if key in out:
                raise SpaceError(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}")
            out[key] = _construct(value_node, path + (key,), lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(child, path + (i,), lines) for i, child in enumerate(node.value)]
    return _scalar(node)


def _scalar(node: yaml.ScalarNode) -> Any:
    return yaml.SafeLoader(yaml.serialize(node)).get_single_data() if node.tag != "tag:yaml.org,2002:str" else node.value


def load_text(text: str, source: str) -> tuple[Any, dict[tuple, int]]:
    """Parse YAML (or JSON, a subset of it) and return (data, {path: line})."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpaceError(f"{source}{where}: malformed YAML: {problem}") from None
    if node is None:
        raise SpaceError(f"{source}: the file is empty")
    lines: dict[tuple, int] = {}
    try:
        data = _construct(node, (), lines)
    except SpaceError as exc:
        raise SpaceError(f"{source} {exc}") from None
    return data, lines


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
