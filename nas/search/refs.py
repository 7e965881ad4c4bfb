"""Resolve what the user names as an architecture: a preset, a file, a search run's trial ``RUN_DIR#N``,
or a run's front entry chosen by a rule (``--pick``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import search_spaces
from search_spaces import DEFAULT_SPACE, Arch, SpaceError
from search_spaces.files import read_json

from ..errors import BadInput
from ..quantities import parse_quantity
from .result import public_entry
from .runs import PARETO_FILE, RUN_FILE, run_result

ARCH_FILE_SUFFIXES = (".yaml", ".yml", ".json")
PICK_EXAMPLE = "best-accuracy, best-mes, or limits such as 'latency<=0.8ms,params<=3M' on latency, params, macs, mes, accuracy"
#: metric names a --pick limit may use, their entry key, and the sense of a bare ``=`` (as in budgets)
_PICK_METRICS = {
    "latency": ("latency_ms", "<="),
    "latency_ms": ("latency_ms", "<="),
    "params": ("params", "<="),
    "macs": ("macs", "<="),
    "mes": ("mes", ">="),
    "accuracy": ("accuracy", ">="),
}


def resolve_arch(ref: str, space: str = DEFAULT_SPACE) -> Arch:
    """A preset name of `space` (``s0``, ``efficientformerv2_s0``), an architecture file, or ``RUN_DIR#N``."""
    return resolve(ref, space)[0]


def resolve(ref: str, space: str = DEFAULT_SPACE, pick: str | None = None) -> tuple[Arch, dict[str, Any] | None]:
    """The architecture `ref` names and, when it comes from a search run, the run's entry for it (``id``,
    metrics, ``accuracy``, ``accuracy_source``, the run's ``device``). With `pick`, `ref` is a run
    directory and the entry is the front's that `pick` chooses (see :func:`pick_entry`)."""
    ref = ref.strip()
    if not ref:
        raise BadInput("empty architecture: give a preset name, an architecture file or RUN_DIR#N")
    if pick is not None:
        if "#" in ref and not Path(ref).exists():
            raise BadInput(f"{ref}: give either one entry RUN_DIR#N or a run directory with --pick, not both")
        return pick_entry(ref, pick)
    if "#" in ref and not Path(ref).exists():
        run_dir, _, number = ref.rpartition("#")
        return run_entry(run_dir, number)
    path = Path(ref)
    if path.is_file():
        return Arch.from_file(path), None
    if path.is_dir() and _is_run(path):
        raise BadInput(
            f"{ref} is a search run: name one of its trials as {ref}#N, or choose a front entry with --pick ({PICK_EXAMPLE})"
        )
    if path.suffix.lower() in ARCH_FILE_SUFFIXES or path.is_dir():
        raise BadInput(f"no such architecture file: {ref}")
    loaded = search_spaces.load(space)
    try:
        return loaded.preset(ref), None
    except SpaceError:
        presets = ", ".join(loaded.preset_names) or "none"
        raise BadInput(
            f"unknown architecture {ref!r}: not a preset of space {loaded.name!r} ({presets}), "
            "an architecture file (.yaml/.json) or RUN_DIR#N"
        ) from None


def _is_run(path: Path) -> bool:
    return (path / RUN_FILE).is_file() or (path / PARETO_FILE).is_file()


def _run_entries(run_dir: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None, str]:
    """A run's front (public entries, ``arch`` as a dict), every trial (None when only ``pareto.json``
    is there to read) and its device. The run's storage is read when it has one, so trials off the
    front and a run still in progress are seen."""
    directory = Path(run_dir)
    if (directory / RUN_FILE).is_file():
        result = run_result(directory)
        keys = ("params", "macs", "latency_ms", "mes", "accuracy")
        history = [public_entry(e, run_dir, e.candidate.to_dict(), keys) | {"feasible": e.feasible} for e in result.history]
        return result.pareto, history, result.device
    pareto = directory / PARETO_FILE
    if not pareto.is_file():
        raise BadInput(f"{run_dir}: no search run there (expected {directory / RUN_FILE} or {pareto})")
    result = read_json(pareto, "search result", BadInput)
    entries = result.get("pareto") if isinstance(result, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) and "arch" in e for e in entries):
        raise BadInput(f"{pareto}: not a readable search result (expected an object with a 'pareto' list of entries)")
    return entries, None, str(result.get("device", "") or "")


def _number(entry: dict[str, Any]) -> str:
    return str(entry.get("id", "")).rpartition("#")[2]


def _arch_of(entry: dict[str, Any], where: str) -> Arch:
    return Arch.from_dict(entry["arch"], source=where)


def run_entry(run_dir: str, number: str) -> tuple[Arch, dict[str, Any]]:
    """Trial `number` of a run: any evaluated trial, on the front or not (only front entries when the run
    left nothing but its ``pareto.json``)."""
    ref = f"{run_dir}#{number}"
    if not re.fullmatch(r"[0-9]+", number):  # ASCII digits only (str.isdigit also takes ٣)
        raise BadInput(f"{ref}: expected RUN_DIR#N with N a trial number, got {number!r}")
    front, history, device = _run_entries(run_dir)
    front_numbers = {_number(e) for e in front}
    for entry in history if history is not None else front:
        if _number(entry) == str(int(number)):
            return _arch_of(entry, ref), dict(entry, device=device, on_front=_number(entry) in front_numbers)
    on_front = ", ".join("#" + _number(e) for e in front) or "none"
    if history is None:
        raise BadInput(f"{ref}: run {run_dir!r} has no entry #{number} on its Pareto front (entries: {on_front})")
    numbers = sorted(int(_number(e)) for e in history)
    span = f"#{numbers[0]} to #{numbers[-1]}" if numbers else "none yet"
    raise BadInput(f"{ref}: run {run_dir!r} has no trial #{number} (its {len(numbers)} trials: {span}; Pareto front: {on_front})")


def parse_pick(rule: str) -> tuple[str, list[tuple[str, str, float, str]]]:
    """``best-accuracy`` / ``best-mes`` -> (the key to maximise, []); limits ``latency<=0.8ms,params<=3M``
    -> ("accuracy", [(key, op, value, token), ...])."""
    text = rule.strip().lower()
    if text in ("best-accuracy", "best-mes"):
        return text[len("best-") :], []
    limits = []
    for token in (t.strip() for t in rule.split(",")):
        match = re.fullmatch(r"([A-Za-z_]+)\s*(<=|>=|<|>|=)\s*(.+)", token)
        if not match or match.group(1).lower() not in _PICK_METRICS:
            raise BadInput(f"--pick {rule!r}: cannot read {token!r} (accepted: {PICK_EXAMPLE})")
        key, sense = _PICK_METRICS[match.group(1).lower()]
        op = sense if match.group(2) == "=" else match.group(2)
        try:
            value = parse_quantity("mes" if key == "accuracy" else key, match.group(3).strip(), token, what="--pick")
        except BadInput:
            raise BadInput(
                f"--pick {rule!r}: {match.group(3).strip()!r} in {token!r} is not a valid {match.group(1)} "
                f"(e.g. latency<=0.8ms, params<=3M, macs<=400M, mes>=50, accuracy>=70)"
            ) from None
        limits.append((key, op, value, token))
    return "accuracy", limits


def _meets(entry: dict[str, Any], key: str, op: str, value: float) -> bool:
    have = entry.get(key)
    if have is None:
        return False
    return {"<=": have <= value, "<": have < value, ">=": have >= value, ">": have > value}[op]


def pick_entry(run_dir: str, rule: str) -> tuple[Arch, dict[str, Any]]:
    """The front entry of a run that `rule` chooses: the highest MES or accuracy, or the most accurate
    entry within limits (ties: lower latency, then the earlier trial)."""
    target, limits = parse_pick(rule)
    if not (Path(run_dir).is_dir() and _is_run(Path(run_dir))):
        raise BadInput(f"--pick needs a search run directory as ARCH; {run_dir!r} is not one")
    front, _, device = _run_entries(run_dir)
    if not front:
        raise BadInput(f"--pick {rule!r}: run {run_dir!r} has no Pareto-front entry yet")
    chosen = [e for e in front if all(_meets(e, key, op, value) for key, op, value, _ in limits)]
    chosen = [e for e in chosen if e.get(target) is not None]
    if not chosen:
        facts = []
        for key in dict.fromkeys(k for k, *_ in limits):
            values = [e[key] for e in front if e.get(key) is not None]
            smallest = key in ("latency_ms", "params", "macs")
            if values:
                best = min(values) if smallest else max(values)
                shown = f"{best:.4g} ms" if key == "latency_ms" else f"{best:,.0f}" if smallest else f"{best:.4g}"
                facts.append(f"{'smallest' if smallest else 'largest'} {key.removesuffix('_ms')} {shown}")
        raise BadInput(
            f"--pick {rule!r}: no entry of the Pareto front of {run_dir!r} meets it "
            f"(front: {len(front)} entries; {', '.join(facts) or 'none with ' + target})"
        )
    best = max(chosen, key=lambda e: (e[target], -e["latency_ms"], -int(_number(e) or 0)))
    return _arch_of(best, str(best.get("id", run_dir))), dict(best, device=device, on_front=True)
