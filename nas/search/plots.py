"""Pareto-front plots of search runs: a PNG (matplotlib) for reports, an interactive HTML page (plotly)
for exploring, with each point's architecture on hover.

Both draw the same picture, prepared once by :func:`figure_data`: every evaluated architecture (over-budget
ones grey), the run's Pareto front over its own objectives highlighted, the 2-D front of the plotted
pair as a staircase, the budgets as lines, and the published EfficientFormerV2 models as labelled stars,
scored the way the run scores architectures (its device table; its accuracy estimator, rebuilt from the
run's settings, only where that estimator can score them). One run is coloured by parameters; several
runs get one colour and marker each.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import latency_lut
import search_spaces
from latency_lut.table import provenance_label
from search_spaces.files import atomic_write_bytes, check_writable
from search_spaces.provenance import require_extra

from ..errors import BadInput
from ..estimate import estimator_from_settings
from ..evaluate import evaluate
from ..pareto import OBJECTIVES, pareto_mask
from .entry import Entry

AXES = tuple(OBJECTIVES)  # accuracy, latency, params, macs, mes
PLOT_SUFFIXES = (".png", ".html")
#: the published models drawn for comparison: (label, preset of the space they are defined in)
REFERENCE_SPACE = "efficientformerv2"
REFERENCE_MODELS = (("S0", "s0"), ("S1", "s1"), ("S2", "s2"), ("L", "l"))
_SCALE = {"params": 1e6, "macs": 1e6}  # plotted in millions
_BUDGET_KEY = {"latency": "latency_ms", "params": "params", "macs": "macs", "mes": "mes"}
_RUN_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
_RUN_MARKERS = (
    ("o", "circle"),
    ("s", "square"),
    ("^", "triangle-up"),
    ("D", "diamond"),
    ("v", "triangle-down"),
    ("P", "cross"),
    ("X", "x"),
    ("h", "hexagon"),
)


def check_plot_path(path: str | Path) -> Path:
    """The plot file to write, checked before any work: a .png or .html name in an existing, writable
    directory (BadInput otherwise)."""
    path = Path(path)
    if path.suffix.lower() not in PLOT_SUFFIXES:
        raise BadInput(f"--plot {path}: the file name must end in .png (an image) or .html (an interactive page)")
    require_extra("matplotlib" if path.suffix.lower() == ".png" else "plotly", f"--plot {path.name}", "plot", BadInput)
    return check_writable(path, "--plot")


# ---- what is drawn ------------------------------------------------------------------------------------
@dataclass
class Points:
    """Points of one kind: plotted coordinates, parameters (M) for colour, hover text."""

    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    params: list[float] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    #: the latency table's typical error of each point, on the axis that shows latency (empty: none)
    x_err: list[float] = field(default_factory=list)
    y_err: list[float] = field(default_factory=list)

    def add(self, x: float, y: float, params: float, text: str) -> None:
        self.x.append(x)
        self.y.append(y)
        self.params.append(params)
        self.text.append(text)

    def errors(self, plotly: bool = False) -> dict[str, Any]:
        """Error-bar arguments for matplotlib's ``errorbar`` (or plotly's ``Scatter``) where a table states its error."""
        out: dict[str, Any] = {}
        for name, values in (("x", self.x_err), ("y", self.y_err)):
            if values:
                out[f"error_{name}" if plotly else f"{name}err"] = (
                    {"type": "data", "array": values, "thickness": 1, "width": 0} if plotly else values
                )
        return out


@dataclass
class RunSeries:
    """One run's points, split as they are drawn."""

    label: str
    others: Points  # feasible, not on the run's front
    front: Points  # the run's front over its objectives
    infeasible: Points
    unplaced_infeasible: int  # over-budget points without a value on an axis (no accuracy estimate)
    stair_x: list[float]
    stair_y: list[float]


@dataclass
class FigureData:
    """Everything a backend needs to draw one plot."""

    x: str
    y: str
    x_label: str
    y_label: str
    title: str
    subtitle: str
    objectives: str
    runs: list[RunSeries]
    budgets: list[tuple[str, float, str]]  # (axis "x"/"y", plotted value, label)
    references: list[dict[str, Any]]  # label, x, y, text
    reference_label: str
    notes: list[str]

    @property
    def single(self) -> bool:
        return len(self.runs) == 1


def _plotted(entry: dict[str, Any], axis: str) -> float | None:
    value = entry.get(OBJECTIVES[axis][0])
    return None if value is None else float(value) / _SCALE.get(axis, 1.0)


def arch_summary(arch: Any, sep: str = "; ") -> str:
    """A compact description of an architecture: resolution, depths, widths and mixers per stage."""
    stages = []
    for s, mixers in enumerate(arch.mixers):
        counts: dict[str, int] = {}
        for m in mixers:
            counts[m] = counts.get(m, 0) + 1
        stages.append(f"s{s + 1} " + " + ".join(f"{n}×{m}" for m, n in counts.items()))
    return (
        f"{arch.resolution} px, depths {'-'.join(map(str, arch.depths))}, widths {'-'.join(map(str, arch.widths))}"
        f"{sep}mixers: {', '.join(stages)}"
    )


def _metrics_text(entry: dict[str, Any]) -> str:
    parts = []
    if entry.get("accuracy") is not None:
        parts.append(f"accuracy {entry['accuracy']:.4g}")
    parts += [
        f"latency {entry['latency_ms']:.3f} ms",
        f"params {entry['params'] / 1e6:.3f} M",
        f"MACs {entry['macs'] / 1e6:.1f} M",
        f"MES {entry['mes']:.1f}",
    ]
    return ", ".join(parts)


def _hover(run: str | None, entry: Entry, status: str) -> str:
    ident = f"{run}#{entry.number}" if run else f"#{entry.number}"
    return f"<b>{ident}</b> ({status})<br>{_metrics_text(entry.metrics)}<br>{arch_summary(entry.candidate, sep='<br>')}"


def _staircase(xs: Sequence[float], ys: Sequence[float], x: str, y: str) -> tuple[list[float], list[float]]:
    """The 2-D Pareto front of the plotted pair as the corner points of its attainment staircase."""
    if not xs:
        return [], []
    pts = np.column_stack([xs, ys])
    signs = np.array([OBJECTIVES[x][1], OBJECTIVES[y][1]], dtype=float)
    best = pts[pareto_mask(-pts * signs)]
    best = best[np.argsort(best[:, 0], kind="stable")]
    # Between two front points the best attainable y is the one at the end that stays achievable: the
    # left point's while x is minimised (horizontal first), the right point's while x is maximised.
    sx, sy = [float(best[0, 0])], [float(best[0, 1])]
    for (x0, y0), (x1, y1) in zip(best[:-1], best[1:]):
        corner = (x1, y0) if OBJECTIVES[x][1] < 0 else (x0, y1)
        sx += [float(corner[0]), float(x1)]
        sy += [float(corner[1]), float(y1)]
    return sx, sy


def _series(result: Any, x: str, y: str, label: str) -> RunSeries:
    front_numbers = {int(str(e["id"]).rpartition("#")[2]) for e in result.pareto}
    seen: set[str] = set()
    others, front, infeasible = Points(), Points(), Points()
    unplaced = 0
    feasible_xy: tuple[list[float], list[float]] = ([], [])
    for entry in result.history:
        if entry.extra.get("duplicate_of") is not None or entry.id in seen:
            continue
        seen.add(entry.id)
        px, py = _plotted(entry.metrics, x), _plotted(entry.metrics, y)
        if px is None or py is None:
            unplaced += not entry.feasible
            continue
        params = entry["params"] / 1e6
        if not entry.feasible:
            infeasible.add(px, py, params, _hover(result.run, entry, "over budget: " + ", ".join(entry.violations)))
            continue
        feasible_xy[0].append(px)
        feasible_xy[1].append(py)
        if entry.number in front_numbers:
            front.add(px, py, params, _hover(result.run, entry, "on the Pareto front"))
            if result.latency_error_pct is not None and "latency" in (x, y):
                latency = px if x == "latency" else py
                (front.x_err if x == "latency" else front.y_err).append(latency * result.latency_error_pct / 100)
        else:
            others.add(px, py, params, _hover(result.run, entry, "feasible"))
    sx, sy = _staircase(*feasible_xy, x, y)
    return RunSeries(label, others, front, infeasible, unplaced, sx, sy)


def _axis_label(axis: str, results: Sequence[Any]) -> str:
    if axis == "latency":
        by_device = {(r.device, r.device_provenance) for r in results}
        if len(by_device) == 1:
            device, provenance = by_device.pop()
            how = "measured on" if provenance in ("measured", "") else f"{provenance_label(provenance)} by"
            errors = {r.latency_error_pct for r in results}
            error = errors.pop() if len(errors) == 1 else None
            bars = f"; bars: its typical error ±{error:g}%" if error else ""
            return f"latency (ms, {how} the {device} table{bars})"
        return "latency (ms; " + ", ".join(f"{d}: {provenance_label(p)}" for d, p in sorted(by_device)) + ")"
    if axis == "accuracy":
        sources = sorted({_accuracy_source(r) for r in results})
        if all(s.startswith("proxy:") for s in sources):
            return f"accuracy estimate ({', '.join(sources)} score; higher is better)"
        return f"accuracy (top-1 %, estimated by {', '.join(sources)})"
    return {"params": "parameters (M)", "macs": "MACs (M)", "mes": "Mobile Efficiency Score (higher is better)"}[axis]


def _accuracy_source(result: Any) -> str:
    if result.settings.get("accuracy_source"):
        return str(result.settings["accuracy_source"])
    return str(result.pareto[0]["accuracy_source"]) if result.pareto else "the run's estimator"


def budget_text(budget: dict[str, float]) -> str:
    """``params ≤ 3M, latency ≤ 1 ms`` for a run's budget."""
    shown = {
        "params": lambda v: f"params ≤ {v / 1e6:g}M",
        "macs": lambda v: f"MACs ≤ {v / 1e6:g}M",
        "latency_ms": lambda v: f"latency ≤ {v:g} ms",
        "mes": lambda v: f"MES ≥ {v:g}",
    }
    return ", ".join(shown[k](v) for k, v in budget.items() if k in shown) or "none"


def _budgets(results: Sequence[Any], x: str, y: str) -> list[tuple[str, float, str]]:
    lines: dict[tuple[str, float], list[str]] = {}
    for result in results:
        for which, axis in (("x", x), ("y", y)):
            key = _BUDGET_KEY.get(axis)
            if key is not None and result.budget.get(key) is not None:
                value = float(result.budget[key]) / _SCALE.get(axis, 1.0)
                lines.setdefault((which, value), []).append(result.run or "(in memory)")
    out = []
    for (which, value), runs in lines.items():
        axis = x if which == "x" else y
        text = "budget " + budget_text({_BUDGET_KEY[axis]: value * _SCALE.get(axis, 1.0)})
        if len(results) > 1 and len(runs) < len(results):
            text += f" ({', '.join(runs)})"
        out.append((which, value, text))
    return out


def _run_lut(result: Any) -> Any:
    path = result.settings.get("lut")
    return latency_lut.load(path if path and Path(path).is_file() else result.device)


def _run_estimator(result: Any) -> tuple[Any, str]:
    """The run's accuracy estimator rebuilt from its settings, or (None, why not). A predictor's measured
    estimator stands for it (a fresh predictor has learnt nothing); an estimator handed to ``search()``
    directly cannot be rebuilt, and its name tells so."""
    settings = result.settings
    source = str(settings.get("accuracy_source") or "")
    kind = settings.get("accuracy") or "proxy"
    try:
        estimator = estimator_from_settings({**settings, "space": result.space})
    except (BadInput, OSError) as exc:
        return None, f"the run's estimator ({source or kind}) cannot be rebuilt: {exc}"
    if estimator.name != source:
        return None, f"the run's estimator ({source}) was handed to the search, not made from its settings"
    return getattr(estimator, "base", estimator), ""


def reference_models(result: Any, x: str, y: str, estimator: Any = None) -> tuple[list[dict[str, Any]], list[str]]:
    """The published EfficientFormerV2 models as the run would score them: params, MACs, latency and MES
    from the run's device table (and MES options); accuracy, when an axis shows it, from the run's
    estimator (or `estimator`), only for models inside the run's space. Returns (points, notes)."""
    settings = result.settings
    try:
        lut = _run_lut(result)
    except latency_lut.LUTError as exc:
        return [], [f"EfficientFormerV2 models not drawn: {exc}"]
    space = search_spaces.load(REFERENCE_SPACE)
    models = []
    for label, preset in REFERENCE_MODELS:
        arch = space.preset(preset)
        try:
            metrics = evaluate(
                arch, lut=lut, mes_alpha=settings.get("mes_alpha") or None, mes_unit=settings.get("mes_unit") or None
            )
        except latency_lut.LUTError as exc:
            return [], [f"EfficientFormerV2 models not drawn: the {lut.device} table cannot predict them ({exc})"]
        models.append((label, arch, dict(metrics, arch=arch)))
    notes = []
    if "accuracy" in (x, y):
        run_space = search_spaces.load(result.space)
        outside = [label for label, arch, _ in models if not run_space.contains(arch)]
        models = [m for m in models if run_space.contains(m[1])]
        if outside:
            notes.append(
                f"EfficientFormerV2 {', '.join(outside)} not drawn: outside space {result.space}, "
                "so the run's estimator cannot score them"
            )
        if models:
            why = ""
            if estimator is None:
                estimator, why = _run_estimator(result)
            if estimator is None:
                notes.append(f"EfficientFormerV2 models not drawn: {why}")
                models = []
            else:
                for (_, _, metrics), value in zip(models, estimator.estimate([m[1] for m in models])):
                    metrics["accuracy"] = float(value)
    points = []
    for label, arch, metrics in models:
        text = (
            f"<b>EfficientFormerV2-{label}</b> (published architecture)<br>{_metrics_text(metrics)}"
            f"<br>{arch_summary(arch, sep='<br>')}"
        )
        points.append({"label": label, "x": _plotted(metrics, x), "y": _plotted(metrics, y), "text": text})
    return points, notes


def figure_data(
    results: Sequence[Any], x: str = "latency", y: str = "accuracy", *, references: bool = True, estimator: Any = None
) -> FigureData:
    """What the plot of `results` (``SearchResult`` objects) shows, independent of the backend."""
    for name, axis in (("--x", x), ("--y", y)):
        if axis not in AXES:
            raise BadInput(f"{name} {axis!r}: choose from {', '.join(AXES)}")
    if x == y:
        raise BadInput(f"--x and --y are both {x!r}: choose two different metrics")
    if not results:
        raise ValueError("figure_data() needs at least one result")
    single = len(results) == 1
    runs = []
    for result in results:
        label = f"{result.run or '(in memory)'} ({result.strategy}): front {len(result.pareto)} of {result.evaluated}"
        runs.append(_series(result, x, y, label))
    first = results[0]
    objectives = ", ".join(first.objectives) if len({r.objectives for r in results}) == 1 else "each run's objectives"
    devices = sorted({f"{r.device} ({provenance_label(r.device_provenance) or 'measured'} latency)" for r in results})
    budgets = sorted({budget_text(r.budget) for r in results})
    if single:
        title = (
            f"Pareto front of {first.run or 'a search'}: {first.strategy}, {first.evaluated} evaluated, "
            f"{len(first.pareto)} on the front"
        )
    else:
        title = f"Pareto fronts of {len(results)} runs"
    subtitle = f"device {', '.join(devices)}  ·  budget {' / '.join(budgets)}"
    notes: list[str] = []
    points: list[dict[str, Any]] = []
    reference_label = ""
    if references:
        points, notes = reference_models(first, x, y, estimator)
        points = [p for p in points if p["x"] is not None and p["y"] is not None]
        if points:
            reference_label = "EfficientFormerV2-" + "/".join(p["label"] for p in points)
            if "accuracy" in (x, y):
                reference_label += f" (accuracy: the {_accuracy_source(first)} estimate)"
            if not single and any(r.device != first.device for r in results):
                notes.append(f"EfficientFormerV2 models use {first.run}'s device table ({first.device})")
    return FigureData(
        x,
        y,
        _axis_label(x, results),
        _axis_label(y, results),
        title,
        subtitle,
        objectives,
        runs,
        _budgets(results, x, y),
        points,
        reference_label,
        notes,
    )


# ---- drawing ------------------------------------------------------------------------------------------
def plot_fronts(
    results: Sequence[Any],
    path: str | Path,
    x: str = "latency",
    y: str = "accuracy",
    *,
    references: bool = True,
    estimator: Any = None,
) -> list[str]:
    """Write the plot of one or several runs' fronts to `path` (.png: matplotlib; .html: plotly, with the
    plotly library embedded so the page works offline), atomically. Returns notes on what was left out."""
    path = check_plot_path(path)
    data = figure_data(results, x, y, references=references, estimator=estimator)
    if path.suffix.lower() == ".png":
        payload = _png(data)
    else:
        payload = _html(data).encode("utf-8")
    atomic_write_bytes(path, payload)
    return data.notes


def _png(data: FigureData) -> bytes:
    from matplotlib import colormaps
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure  # no pyplot: no display, no global backend switch

    fig = Figure(figsize=(10, 7), dpi=150, layout="constrained")
    ax = fig.add_subplot()
    cmap = colormaps["viridis"]
    if data.single:
        run = data.runs[0]
        values = run.others.params + run.front.params
        norm = Normalize(min(values, default=0.0), max(values, default=1.0))
        if run.infeasible.x:
            ax.scatter(
                run.infeasible.x,
                run.infeasible.y,
                s=14,
                marker="x",
                color="0.7",
                linewidths=0.8,
                label=_infeasible_label(run),
                zorder=1,
            )
        mappable = None
        if run.others.x:
            mappable = ax.scatter(
                run.others.x,
                run.others.y,
                c=run.others.params,
                cmap=cmap,
                norm=norm,
                s=18,
                alpha=0.55,
                linewidths=0,
                label=f"feasible, not on the front ({len(run.others.x)})",
                zorder=2,
            )
        if run.stair_x:
            ax.plot(
                run.stair_x, run.stair_y, color="crimson", lw=1.3, alpha=0.9, zorder=3, label=f"2-D front of {data.x} vs {data.y}"
            )
        if run.front.x:
            mappable = ax.scatter(
                run.front.x,
                run.front.y,
                c=run.front.params,
                cmap=cmap,
                norm=norm,
                s=46,
                edgecolors="crimson",
                linewidths=1.2,
                zorder=4,
                label=f"Pareto front over {data.objectives} ({len(run.front.x)})",
            )
            if run.front.errors():
                ax.errorbar(
                    run.front.x, run.front.y, **run.front.errors(), fmt="none", ecolor="crimson", alpha=0.45, lw=0.9, zorder=3
                )
        if mappable is not None:
            fig.colorbar(mappable, ax=ax, label="parameters (M)", pad=0.01)
    else:
        for i, run in enumerate(data.runs):
            colour, (marker, _) = _RUN_COLOURS[i % len(_RUN_COLOURS)], _RUN_MARKERS[i % len(_RUN_MARKERS)]
            if run.infeasible.x:
                ax.scatter(run.infeasible.x, run.infeasible.y, s=10, marker="x", color="0.75", linewidths=0.6, zorder=1)
            ax.scatter(run.others.x, run.others.y, s=10, marker=marker, color=colour, alpha=0.18, linewidths=0, zorder=2)
            if run.stair_x:
                ax.plot(run.stair_x, run.stair_y, color=colour, lw=1.3, alpha=0.9, zorder=3)
            ax.scatter(
                run.front.x,
                run.front.y,
                s=40,
                marker=marker,
                color=colour,
                edgecolors="black",
                linewidths=0.6,
                zorder=4,
                label=run.label,
            )
            if run.front.errors():
                ax.errorbar(
                    run.front.x, run.front.y, **run.front.errors(), fmt="none", ecolor=colour, alpha=0.45, lw=0.9, zorder=3
                )
    if data.references:
        ax.scatter(
            [p["x"] for p in data.references],
            [p["y"] for p in data.references],
            s=190,
            marker="*",
            color="black",
            edgecolors="white",
            linewidths=0.6,
            zorder=5,
            label=data.reference_label,
        )
        for p in data.references:
            ax.annotate(
                p["label"], (p["x"], p["y"]), xytext=(7, 5), textcoords="offset points", fontsize=10, fontweight="bold", zorder=6
            )
    ax.margins(0.06)
    limits = {}
    for which, (low, high) in (("x", ax.get_xlim()), ("y", ax.get_ylim())):
        values = [v for w, v, _ in data.budgets if w == which]  # keep every budget line in view, off the frame
        pad = 0.03 * (max([high, *values]) - min([low, *values]))
        limits[which] = (min([low, *(v - pad for v in values)]), max([high, *(v + pad for v in values)]))
    ax.set_xlim(*limits["x"])
    ax.set_ylim(*limits["y"])
    for i, (which, value, label) in enumerate(data.budgets):
        low, high = limits[which]
        over = (low, value) if (data.x if which == "x" else data.y) == "mes" else (value, high)  # MES is a minimum
        style = {"color": "0.25", "ls": ("--", ":", "-.")[i % 3], "lw": 1.2, "label": label, "zorder": 2.5}
        if which == "x":
            ax.axvline(value, **style)
            ax.axvspan(*over, color="0.5", alpha=0.07, lw=0)
        else:
            ax.axhline(value, **style)
            ax.axhspan(*over, color="0.5", alpha=0.07, lw=0)
    ax.set_xlabel(data.x_label)
    ax.set_ylabel(data.y_label)
    ax.grid(True, alpha=0.25)
    fig.suptitle(data.title, fontsize=12, fontweight="bold")
    ax.set_title("\n".join([data.subtitle] + ["note: " + n for n in data.notes]), fontsize=10)
    handles, labels = ax.get_legend_handles_labels()
    order = sorted(
        range(len(labels)),
        key=lambda i: next((rank for start, rank in _LEGEND_ORDER.items() if labels[i].startswith(start)), len(_LEGEND_ORDER)),
    )
    legend = fig.legend(
        [handles[i] for i in order],
        [labels[i] for i in order],
        loc="outside lower center",
        ncols=1 if not data.single else 2,
        frameon=False,
        fontsize=9,
    )
    if data.single:  # a colour-mapped handle takes its first point's colour; show the map's middle instead
        for handle, label in zip(legend.legend_handles, legend.get_texts()):
            if label.get_text().startswith("feasible"):
                handle.set_array(None)
                handle.set_facecolor(cmap(0.5))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


#: the legend's order by the start of a label; other labels (the runs') come after these
_LEGEND_ORDER = {"Pareto front": 0, "2-D front": 1, "feasible": 2, "over budget": 3}


def _infeasible_label(run: RunSeries) -> str:
    label = f"over budget ({len(run.infeasible.x)})"
    if run.unplaced_infeasible:
        label += f"; {run.unplaced_infeasible} more have no accuracy estimate"
    return label


def _html(data: FigureData) -> str:
    import plotly.graph_objects as go

    fig = go.Figure()
    hover = "%{text}<extra></extra>"
    if data.single:
        run = data.runs[0]
        values = run.others.params + run.front.params
        scale = {"colorscale": "Viridis", "cmin": min(values, default=0.0), "cmax": max(values, default=1.0)}
        if run.infeasible.x:
            fig.add_trace(
                go.Scatter(
                    x=run.infeasible.x,
                    y=run.infeasible.y,
                    text=run.infeasible.text,
                    mode="markers",
                    name=_infeasible_label(run),
                    hovertemplate=hover,
                    marker={"symbol": "x-thin", "size": 6, "color": "#b0b0b0", "line": {"width": 1, "color": "#b0b0b0"}},
                )
            )
        bar = {"colorbar": {"title": {"text": "parameters (M)"}}, "showscale": True}
        if run.others.x:
            fig.add_trace(
                go.Scatter(
                    x=run.others.x,
                    y=run.others.y,
                    text=run.others.text,
                    mode="markers",
                    hovertemplate=hover,
                    name=f"feasible, not on the front ({len(run.others.x)})",
                    marker={"color": run.others.params, "size": 6, "opacity": 0.6, **scale, **({} if run.front.x else bar)},
                )
            )
        if run.stair_x:
            fig.add_trace(
                go.Scatter(
                    x=run.stair_x,
                    y=run.stair_y,
                    mode="lines",
                    hoverinfo="skip",
                    name=f"2-D front of {data.x} vs {data.y}",
                    line={"color": "crimson", "width": 1.5},
                )
            )
        if run.front.x:
            fig.add_trace(
                go.Scatter(
                    x=run.front.x,
                    y=run.front.y,
                    text=run.front.text,
                    mode="markers",
                    hovertemplate=hover,
                    name=f"Pareto front over {data.objectives} ({len(run.front.x)})",
                    marker={"color": run.front.params, "size": 10, **scale, **bar, "line": {"color": "crimson", "width": 1.5}},
                    **run.front.errors(plotly=True),
                )
            )
    else:
        for i, run in enumerate(data.runs):
            colour, (_, symbol) = _RUN_COLOURS[i % len(_RUN_COLOURS)], _RUN_MARKERS[i % len(_RUN_MARKERS)]
            group = f"run{i}"
            fig.add_trace(
                go.Scatter(
                    x=run.others.x + run.infeasible.x,
                    y=run.others.y + run.infeasible.y,
                    text=run.others.text + run.infeasible.text,
                    mode="markers",
                    hovertemplate=hover,
                    legendgroup=group,
                    showlegend=False,
                    name=run.label,
                    marker={"color": colour, "symbol": symbol, "size": 5, "opacity": 0.25},
                )
            )
            if run.stair_x:
                fig.add_trace(
                    go.Scatter(
                        x=run.stair_x,
                        y=run.stair_y,
                        mode="lines",
                        hoverinfo="skip",
                        legendgroup=group,
                        showlegend=False,
                        line={"color": colour, "width": 1.5},
                    )
                )
            fig.add_trace(
                go.Scatter(
                    x=run.front.x,
                    y=run.front.y,
                    text=run.front.text,
                    mode="markers",
                    hovertemplate=hover,
                    legendgroup=group,
                    name=run.label,
                    marker={"color": colour, "symbol": symbol, "size": 9, "line": {"color": "black", "width": 0.8}},
                    **run.front.errors(plotly=True),
                )
            )
    if data.references:
        fig.add_trace(
            go.Scatter(
                x=[p["x"] for p in data.references],
                y=[p["y"] for p in data.references],
                text=[p["label"] for p in data.references],
                hovertext=[p["text"] for p in data.references],
                hovertemplate="%{hovertext}<extra></extra>",
                mode="markers+text",
                textposition="top right",
                name=data.reference_label,
                marker={"symbol": "star", "size": 15, "color": "black", "line": {"color": "white", "width": 0.6}},
            )
        )
    for which, value, label in data.budgets:
        line = {
            "line_dash": "dash",
            "line_color": "#404040",
            "line_width": 1,
            "annotation_text": label,
            "annotation_font_size": 11,
        }
        if which == "x":
            fig.add_vline(x=value, annotation_position="top", **line)
        else:
            fig.add_hline(y=value, annotation_position="right", **line)
    notes = "".join(f"<br><span style='font-size:11px;color:#666'>note: {n}</span>" for n in data.notes)
    fig.update_layout(
        title={"text": f"{data.title}<br><span style='font-size:13px'>{data.subtitle}</span>{notes}"},
        xaxis_title=data.x_label,
        yaxis_title=data.y_label,
        template="plotly_white",
        height=720,
        hovermode="closest",
        legend={"orientation": "h", "yanchor": "top", "y": -0.12, "xanchor": "center", "x": 0.5},
        margin={"t": 110 + 16 * len(data.notes)},
    )
    return fig.to_html(include_plotlyjs=True, full_html=True)


__all__ = ["plot_fronts", "figure_data", "reference_models", "check_plot_path", "arch_summary", "budget_text", "AXES"]
