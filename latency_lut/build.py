"""Building a latency table: measure every layer key of a space on this machine, then calibrate.

The build works in batches of keys; after each batch the measurements so far are written atomically
to ``OUT.partial.json``, so an interrupted build resumes (``resume=True``) without re-measuring a
finished entry. The final table replaces ``OUT`` only when the build completes.
"""

from __future__ import annotations

import json
import random
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import search_spaces
from search_spaces import Arch, LayerSpec, Space
from search_spaces.files import atomic_write_text, check_writable, read_json
from search_spaces.provenance import require_extra, versions

from .backends import make_runner, measuring
from .errors import LUTError
from .host import host_description
from .table import LUT, Calibration, table_meta
from .timing import Timing, measure_interleaved, reference_unit

Progress = Callable[[int, int, str], None]  # (done, total, what)


def _module_and_shape(spec_or_arch: LayerSpec | Arch, batch: int):
    import supernet

    if isinstance(spec_or_arch, Arch):
        return supernet.SubNet(spec_or_arch), (batch, 3, spec_or_arch.resolution, spec_or_arch.resolution)
    spec = spec_or_arch
    return supernet.build_layer(spec), (batch, spec.cin, spec.grid, spec.grid)


def runner_for(backend: str, item: LayerSpec | Arch, threads: int, batch: int = 1):
    """A runner for one layer spec or one whole architecture (random weights: latency does not depend on them)."""
    module, shape = _module_and_shape(item, batch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return make_runner(backend, module, shape, threads)


#: The key under which the reference unit's timing comes back from a measurement; each reference model's
#: runner is timed under this key followed by its index.
REFERENCE_KEY = "<reference>"
_REFERENCE_RUNNERS: dict[tuple[str, str, int], Any] = {}


def is_reference(key: str) -> bool:
    """Whether a runner's key is one of the reference models'."""
    return key.startswith(REFERENCE_KEY)


def _reference_runner(backend: str, arch: Arch, threads: int):
    """A reference model's runner, prepared once per process (an ONNX export of a whole model takes
    seconds; a build times the references in each of its batches)."""
    key = (backend, arch.id, threads)
    if key not in _REFERENCE_RUNNERS:
        _REFERENCE_RUNNERS[key] = runner_for(backend, arch, threads)
    return _REFERENCE_RUNNERS[key]


def reference_archs(space: Space) -> list[Arch]:
    """The fixed models a table's timings are kept relative to: every preset of the space (or, in a space
    without presets, the subnet that seed 0 samples), each timed whole in every pass; the unit is their
    geometric mean, pass by pass.

    Several references rather than one because the reference moves against the rest when the machine's
    speed moves, and its move is every prediction's bias: on this VM, fitting on one round of timings and
    validating on another (``bench/bench_reference_unit.py``, 30 pairs of rounds, quiet and with the other
    core busy), S0 alone kept a median 92% of 50 held-out subnets within +-10% (64-100%), the geometric
    mean of the five presets 93% (78-98%); under a heavier, varying background load S0 75% (16-98%,
    biases -13 to +15%), the mean 90% (78-100%, biases -4 to +5%)."""
    if space.preset_names:
        return [space.preset(name) for name in space.preset_names]
    return [space.sample(random.Random(0))]


def recorded_reference(provenance: dict[str, Any]) -> tuple[list[Arch], float] | None:
    """The reference models a table's timings are relative to and the unit's latency, as its provenance
    records them (``archs``; ``arch``, one model, in tables written before units of several), or None."""
    recorded = provenance.get("reference")
    if not isinstance(recorded, dict) or not isinstance(recorded.get("ms"), (int, float)):
        return None
    archs = recorded.get("archs", [recorded["arch"]] if "arch" in recorded else [])
    if not archs:
        return None
    return [Arch.from_dict(a, source="the table's reference") for a in archs], float(recorded["ms"])


def reference_record(references: Sequence[Arch], ms: float, why: str) -> dict[str, Any]:
    """What a table's provenance keeps of its unit (read back by :func:`recorded_reference`)."""
    return {"archs": [a.to_dict() for a in references], "ms": ms, "why": why}


def _reference_unit(timings: dict[str, Timing]) -> dict[str, Timing]:
    """The references' timings replaced by the unit's under REFERENCE_KEY: per pass, the geometric mean
    of the references' chunks (what every other timing's ratio is to)."""
    keys = [key for key in timings if is_reference(key)]
    if not keys:
        return timings
    unit = reference_unit([timings[key].pass_ms for key in keys])
    q1, med, q3 = np.percentile(unit, [25, 50, 75])
    combined = Timing(float(med), float(q3 - q1), len(unit), timings[keys[0]].iters, 1.0, list(unit))
    return {REFERENCE_KEY: combined} | {key: t for key, t in timings.items() if not is_reference(key)}


def _prepare_and_time(
    factories: dict[str, Callable[[], Any]],
    threads: int,
    passes: int,
    seed: int,
    seconds: dict[str, float] | None,
    progress: Progress | None = None,
    what: str = "models",
) -> dict[str, Timing]:
    """Prepare every runner (export, session, compile), then time them all interleaved, the reference
    models' timings combined into the unit's (see :func:`_reference_unit`). `seconds`, when given,
    accumulates the wall time of each phase (``preparing_s``, ``timing_s``): on a phone the first
    happens on the host and only the second occupies the device, so the two are reported apart."""
    started = time.perf_counter()
    with measuring(threads):
        runners = {}
        for i, (key, factory) in enumerate(factories.items()):
            runners[key] = factory()
            if progress:
                progress(i + 1, len(factories), f"preparing {what}")
        prepared = time.perf_counter()
        timings = measure_interleaved(
            runners,
            passes=passes,
            seed=seed,
            on_pass=(lambda p: progress(p + 1, passes, f"measuring {what}")) if progress else None,
            reference=[key for key in runners if is_reference(key)],
        )
    if seconds is not None:
        seconds["preparing_s"] = seconds.get("preparing_s", 0.0) + prepared - started
        seconds["timing_s"] = seconds.get("timing_s", 0.0) + time.perf_counter() - prepared
    return _reference_unit(timings)


def _factories(
    items: dict[str, LayerSpec | Arch], backend: str, threads: int, references: Sequence[Arch] | None
) -> dict[str, Callable[[], Any]]:
    """Runner factories for `items`, the reference models' (cached per process) first."""
    out: dict[str, Callable[[], Any]] = {}
    for i, arch in enumerate(references or ()):
        out[f"{REFERENCE_KEY}{i}"] = lambda arch=arch: _reference_runner(backend, arch, threads)
    for key, item in items.items():
        out[key] = lambda item=item: runner_for(backend, item, threads)
    return out


def measure_specs(
    specs: list[LayerSpec],
    backend: str,
    threads: int,
    passes: int,
    seed: int,
    references: Sequence[Arch] | None = None,
    seconds: dict[str, float] | None = None,
) -> dict[str, dict]:
    """Measure a batch of layer specs on this machine, interleaved; {key: timing} (also a Ray task).
    With `references`, those whole models are timed in every pass too, every timing carries its ratio
    to their geometric mean, and the unit's own timing comes back under REFERENCE_KEY. `seconds`
    accumulates the time spent preparing and timing."""
    factories = _factories({spec.key: spec for spec in specs}, backend, threads, references)
    timings = _prepare_and_time(factories, threads, passes, seed, seconds)
    return {key: timing.to_dict() for key, timing in timings.items()}


#: Ray custom resource that marks a node as a measuring device; each such node measures one batch at a
#: time, so batches never share a machine's cores. Start each node of a farm of identical devices with
#: ``ray start --address HEAD --resources '{"nas_lut_device": 1}'``.
RAY_DEVICE_RESOURCE = "nas_lut_device"


def _run_batches(
    batches: list[list[LayerSpec]],
    backend: str,
    threads: int,
    passes: int,
    seed: int,
    ray_address: str | None,
    references: Sequence[Arch] | None = None,
):
    """Yield (batch, timings, node, seconds) as batches finish: here one after another (node None), or on
    a Ray cluster's devices (node: the measuring node's id and host); seconds: the batch's time spent
    preparing and timing (see :func:`_prepare_and_time`)."""
    if ray_address is None:
        for i, batch in enumerate(batches):
            seconds: dict[str, float] = {}
            yield batch, measure_specs(batch, backend, threads, passes, seed + i, references, seconds), None, seconds
        return
    import ray

    if not ray.is_initialized():
        if ray_address == "local":
            ray.init(
                include_dashboard=False,
                num_cpus=max(threads, 1),
                resources={RAY_DEVICE_RESOURCE: 1},
                _node_ip_address="127.0.0.1",
                log_to_driver=False,
                configure_logging=False,
            )
        else:
            ray.init(address=ray_address, include_dashboard=False, log_to_driver=False)
    if not ray.cluster_resources().get(RAY_DEVICE_RESOURCE):
        raise LUTError(
            f"the Ray cluster at {ray_address!r} has no node with the {RAY_DEVICE_RESOURCE!r} resource; start "
            f"measuring nodes with: ray start --address ADDRESS --resources '{{\"{RAY_DEVICE_RESOURCE}\": 1}}'"
        )
    task = ray.remote(num_cpus=threads, resources={RAY_DEVICE_RESOURCE: 1}, max_retries=2)(_measure_on_node)
    pending = {task.remote(batch, backend, threads, passes, seed + i, references): batch for i, batch in enumerate(batches)}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        timings, node, seconds = ray.get(ready[0])
        yield pending.pop(ready[0]), timings, node, seconds


def _measure_on_node(
    batch: list[LayerSpec], backend: str, threads: int, passes: int, seed: int, references: Sequence[Arch] | None = None
):
    """A batch measured on a Ray node, with the node it ran on (its id and its host's description): a
    table records the machines that measured it, not the driver's; and the batch's seconds."""
    import ray

    node = {"node": ray.get_runtime_context().get_node_id(), "host": host_description()}
    seconds: dict[str, float] = {}
    return measure_specs(batch, backend, threads, passes, seed, references, seconds), node, seconds


def _measure_archs_on_node(
    archs: list[Arch], backend: str, threads: int, passes: int, seed: int, references: Sequence[Arch], unit: float | None
):
    """The calibration measured on a Ray node, with its seconds (:func:`measure_archs` in a task)."""
    seconds: dict[str, float] = {}
    return measure_archs(archs, backend, threads, passes, seed, None, seconds, references, unit), seconds


#: The phases of a measurement whose wall time a table's provenance keeps (seconds, summed over batches).
TIME_PHASES = ("preparing_s", "timing_s")


def add_seconds(provenance: dict[str, Any], seconds: dict[str, float]) -> None:
    """Add one measurement's seconds per phase to a table's provenance (kept across a resumed build)."""
    for key in TIME_PHASES:
        provenance[key] = round(provenance.get(key, 0.0) + seconds.get(key, 0.0), 1)


def calibration_archs(space: Space, count: int, seed: int) -> list[Arch]:
    """Random architectures for the end-to-end calibration, plus the space's presets when it has any."""
    archs = [space.preset(name) for name in space.preset_names]
    rng = random.Random(seed)
    while len(archs) < count + len(space.preset_names):
        archs.append(space.sample(rng))
    return archs


def measure_archs(
    archs: list[Arch],
    backend: str,
    threads: int,
    passes: int,
    seed: int = 0,
    progress: Progress | None = None,
    seconds: dict[str, float] | None = None,
    references: Sequence[Arch] | None = None,
    reference_ms: float | None = None,
) -> list[float]:
    """End-to-end latency (ms) of whole architectures, interleaved. `seconds`, when given, receives the
    wall time spent preparing the runners (conversion, sessions) and timing them. With `references`,
    those models are timed in every pass too and each latency is returned as its ratio to their unit
    (geometric mean) times `reference_ms` (default: the unit's own latency in this measurement);
    `seconds` then also receives ``reference_ms``, the unit's latency now."""
    factories = _factories({str(i): arch for i, arch in enumerate(archs)}, backend, threads, references)
    timings = _prepare_and_time(factories, threads, passes, seed, seconds, progress)
    if not references:
        return [timings[str(i)].ms for i in range(len(archs))]
    now = timings[REFERENCE_KEY].ms
    if seconds is not None:
        seconds["reference_ms"] = now
    unit = reference_ms if reference_ms is not None else now
    return [timings[str(i)].ratio * unit for i in range(len(archs))]


def backend_versions(backend: str) -> dict[str, str]:
    """The library versions a table measured with `backend` depends on."""
    extra = {"onnxruntime": ("onnxruntime",), "coreml": ("coremltools",)}.get(backend, ())
    return versions("torch", "numpy", *extra)


def build_lut(
    space: Space | str,
    device: str,
    backend: str,
    out: str | Path,
    *,
    threads: int = 1,
    resume: bool = False,
    passes: int = 7,
    batch_size: int = 32,
    calibration_samples: int = 16,
    seed: int = 0,
    limit: int | None = None,
    progress: Progress | None = None,
    ray_address: str | None = None,
) -> LUT:
    """Measure every layer key of `space` with `backend` and write the calibrated table to `out`.

    With `ray_address` ("local" for a Ray instance on this machine's loopback, or a cluster address),
    batches run as Ray tasks on the cluster's measuring nodes (see :func:`_run_batches`)."""
    space = search_spaces.load(space) if isinstance(space, str) else space
    if ray_address is not None:
        require_extra("ray", "--ray", "ray", LUTError)
    out = check_writable(out, "table")
    partial_path = out.with_name(out.name + ".partial.json")
    provenance = {
        "kind": "measured",
        "host": host_description(),
        "protocol": f"interleaved passes={passes}, chunk median, median of passes; every latency kept relative to "
        f"the geometric mean of the reference models timed in the same passes; calibrated on {calibration_samples} "
        "random subnets + presets",
    }
    references = reference_archs(space)
    meta = table_meta(device, backend, threads, space, provenance, backend_versions(backend))
    entries: dict[str, dict[str, Any]] = {}
    calibration_points: dict[str, Any] | None = None
    if resume and partial_path.exists():
        state = read_json(partial_path, "partial build", LUTError)
        if not isinstance(state, dict) or not isinstance(state.get("meta"), dict) or not isinstance(state.get("entries"), dict):
            raise LUTError(f"{partial_path}: corrupted partial build; delete it to start over")
        for key in ("device", "backend", "threads", "space_name"):
            if state["meta"].get(key) != meta[key]:
                raise LUTError(
                    f"{partial_path}: partial build has {key}={state['meta'].get(key)!r}, this build "
                    f"{meta[key]!r}; use another --out or delete it"
                )
        entries = state["entries"]
        calibration_points = state.get("calibration_points")
        for key in ("measured_on", "reference"):
            if key in state["meta"].get("provenance", {}):
                provenance[key] = dict(state["meta"]["provenance"][key])
        recorded = recorded_reference(provenance)
        if recorded is not None:  # the rest is measured in the unit of what is there
            references = recorded[0]
        for key in TIME_PHASES:
            if isinstance(state["meta"].get("provenance", {}).get(key), (int, float)):
                provenance[key] = state["meta"]["provenance"][key]
    elif partial_path.exists() and not resume:
        raise LUTError(f"{partial_path} exists from an interrupted build: pass --resume to continue it, or delete it")

    specs = space.all_layers()
    if limit is not None:
        specs = specs[:limit]
    todo = [spec for spec in specs if spec.key not in entries]
    total = len(specs)

    def save_partial() -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(
            partial_path, json.dumps({"meta": meta, "entries": entries, "calibration_points": calibration_points}, indent=1)
        )

    batches = [todo[start : start + batch_size] for start in range(0, len(todo), batch_size)]
    done = total - len(todo)
    for batch, timings, node, seconds in _run_batches(batches, backend, threads, passes, seed, ray_address, references):
        add_seconds(provenance, seconds)
        now = timings.pop(REFERENCE_KEY)
        if "reference" not in provenance:  # the unit of the whole table: the references' latency in the first batch
            provenance["reference"] = reference_record(
                references,
                now["ms"],
                "every entry is its median ratio to the geometric mean of these models, timed in the same passes, times "
                "this latency: a sustained change of the machine's speed during the build cancels, and validate measures "
                "in the same unit",
            )
        unit = provenance["reference"]["ms"]
        for key, timing in timings.items():
            entries[key] = {
                **timing,
                "ms": round(timing["ratio"] * unit, 6),
                "spread_ms": round(timing["spread_ms"] * unit / now["ms"], 6),
                "raw_ms": timing["ms"],
            }
        if node is not None:  # the machines that measured the table, not the driver's
            record = provenance.setdefault("measured_on", {}).setdefault(node["node"], {"host": node["host"], "batches": 0})
            record["batches"] += 1
            provenance["host"] = "; ".join(sorted({r["host"] for r in provenance["measured_on"].values()}))
        save_partial()
        done += len(batch)
        if progress:
            progress(done, total, "layers")

    lut = LUT(meta, dict(entries))
    if calibration_points is None and calibration_samples > 0 and limit is None:
        archs = calibration_archs(space, calibration_samples, seed)
        unit = provenance.get("reference", {}).get("ms")
        if ray_address is None:
            seconds = {}
            measured = measure_archs(archs, backend, threads, passes, seed, progress, seconds, references, unit)
        else:  # on one of the farm's devices, like the layers
            import ray

            task = ray.remote(num_cpus=threads, resources={RAY_DEVICE_RESOURCE: 1})(_measure_archs_on_node)
            measured, seconds = ray.get(task.remote(archs, backend, threads, passes, seed, references, unit))
        add_seconds(provenance, seconds)
        sums = [sum(ms for _, ms in lut.layer_ms(a)) for a in archs]
        counts = [len(a.layers()) for a in archs]
        calibration_points = {
            "archs": [a.to_dict() for a in archs],
            "layer_sum_ms": sums,
            "n_layers": counts,
            "measured_ms": measured,
        }
        save_partial()
    if calibration_points is not None:
        cal = Calibration.fit(
            calibration_points["layer_sum_ms"], calibration_points["n_layers"], calibration_points["measured_ms"]
        )
        predicted = cal.apply(np.array(calibration_points["layer_sum_ms"]), np.array(calibration_points["n_layers"]))
        errors = np.abs(predicted - np.array(calibration_points["measured_ms"])) / np.array(calibration_points["measured_ms"])
        cal.details = {
            "fit_mape": float(errors.mean()),
            "layer_sum_ms": calibration_points["layer_sum_ms"],
            "n_layers": calibration_points["n_layers"],
            "measured_ms": calibration_points["measured_ms"],
        }
        lut.calibration = cal
    lut.save(out)
    partial_path.unlink(missing_ok=True)
    return lut
