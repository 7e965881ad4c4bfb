"""``nas lut ...``: list, build, validate, export per-layer packages, import phone measurements."""

from __future__ import annotations

import argparse
from pathlib import Path

import latency_lut
import search_spaces
from latency_lut.fitting import FORMATS, build_fitted, export_models, fit_table
from latency_lut.phone import export_blocks, import_measurements
from latency_lut.validate import plot_validation, validate
from search_spaces import DEFAULT_SPACE
from search_spaces.files import write_failure

from ..errors import BadInput
from .base import Command, note, print_json, progress_bar, report, resume_command, table


def _in_user_dir(name: str) -> str:
    """A table's default place, in the user data directory (made on first use)."""
    directory = latency_lut.user_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_failure(directory / name, exc) from None
    return str(directory / name)


class LutListCommand(Command):
    name = "lut list"
    help = "the tables available (shipped and user-built)"

    def run(self, args: argparse.Namespace) -> int:
        tables = latency_lut.list_luts()
        if args.json:
            print_json(tables)
            return 0
        rows = [
            [
                t["device"] + (" (default)" if t.get("default") else ""),
                t.get("backend", "?"),
                t.get("provenance", "?"),
                str(t.get("threads", "?")),
                str(t.get("entries", "?")),
                t.get("space", "?"),
                t.get("date", "?"),
                "shipped" if t["shipped"] else t["path"],
            ]
            if "error" not in t
            else [t["device"], "-", "-", "-", "-", "-", "-", f"unreadable: {t['error']}"]
            for t in tables
        ]
        print(table(rows, ["device", "backend", "provenance", "threads", "entries", "space", "date", "where"]))
        return 0


class LutBuildCommand(Command):
    name = "lut build"
    help = "measure every layer configuration of a space on this machine"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--device", help="name of the table to build (e.g. my-laptop-ort)")
        parser.add_argument(
            "--backend", default="onnxruntime", choices=latency_lut.BACKENDS, help="measuring backend (default: %(default)s)"
        )
        parser.add_argument("--space", default=DEFAULT_SPACE, help="space to cover (default: %(default)s)")
        parser.add_argument("--out", help="table file to write (default: $NAS_HOME/luts/DEVICE.json)")
        parser.add_argument("--threads", type=int, default=1, help="CPU threads (default: %(default)s)")
        parser.add_argument("--passes", type=int, default=7, help="interleaved timing passes (default: %(default)s)")
        parser.add_argument(
            "--calibration-samples",
            type=int,
            default=16,
            help="random subnets measured end to end to calibrate (default: %(default)s)",
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--resume", action="store_true", help="continue an interrupted build without re-measuring")
        parser.add_argument(
            "--ray",
            nargs="?",
            const="local",
            metavar="ADDRESS",
            help="measure on a Ray cluster's devices (nodes started with the nas_lut_device resource); "
            "without ADDRESS a local Ray instance on loopback",
        )
        parser.add_argument("--dry-run", action="store_true", help="only count the layer configurations to measure")
        parser.add_argument(
            "--fit",
            type=int,
            metavar="N",
            help="instead of timing every layer, time N whole subnets chosen to condition the fit and fit the cost model",
        )

    def resume_hint(self, args: argparse.Namespace, argv: list[str]) -> str | None:
        return None if args.dry_run else resume_command(argv)

    def run(self, args: argparse.Namespace) -> int:
        space = search_spaces.load(args.space)
        if args.dry_run:
            specs = space.all_layers()
            kinds: dict[str, int] = {}
            for spec in specs:
                kinds[spec.kind] = kinds.get(spec.kind, 0) + 1
            if args.json:
                print_json({"space": space.name, "entries": len(specs), "by_kind": kinds, "keys": [s.key for s in specs]})
            else:
                print(f"space {space.name}: {len(specs)} layer configurations to measure")
                print(", ".join(f"{k} {v}" for k, v in kinds.items()))
            return 0
        if not args.device:
            raise BadInput("--device NAME is required (the name to give the table)")
        if args.threads < 1 or args.passes < 1:
            raise BadInput("--threads and --passes must be at least 1")
        out = args.out or _in_user_dir(f"{args.device}.json")
        if args.fit is not None:
            return self._fit(args, space, out)
        with progress_bar(args) as progress:
            lut = latency_lut.build_lut(
                space,
                args.device,
                args.backend,
                out,
                threads=args.threads,
                resume=args.resume,
                passes=args.passes,
                calibration_samples=args.calibration_samples,
                seed=args.seed,
                progress=progress,
                ray_address=args.ray,
            )
        info = {
            "device": lut.device,
            "backend": lut.backend,
            "entries": len(lut.entries),
            "path": str(lut.path),
            "calibration": {k: v for k, v in lut.calibration.to_dict().items() if k != "details"},
            "calibration_fit_mape": lut.calibration.details.get("fit_mape"),
        }
        report(
            args,
            info,
            f"wrote {info['path']}: {info['entries']} entries, calibration scale {lut.calibration.scale:.3f}, "
            f"per layer {lut.calibration.per_layer_ms:.4f} ms, offset {lut.calibration.offset_ms:.3f} ms",
        )
        return 0

    def _fit(self, args: argparse.Namespace, space: search_spaces.Space, out: str) -> int:
        if args.fit < 3:
            raise BadInput(f"--fit needs at least 3 models, got {args.fit}")
        if args.ray or args.resume:
            raise BadInput("--fit times whole models here: it takes neither --ray nor --resume")
        with progress_bar(args) as progress:
            lut = build_fitted(
                space,
                args.device,
                args.backend,
                out,
                n=args.fit,
                threads=args.threads,
                passes=args.passes,
                seed=args.seed,
                progress=progress,
            )
        return _report_fitted(args, lut)


#: Whole models per fitted coefficient below which `fit` says its table is thinly supported: at 20 models
#: for 10 coefficients, fitted tables met +-10% on 92-96% of held-out subnets here (bench/bench_lut_fit.py;
#: refitted with 11 coefficients from the same timings, 98% from 20 models and 96% from 10).
MODELS_PER_COEFFICIENT = 2


def models_needed(features: int) -> int:
    """Whole models for a fit of `features` features (and the fixed cost) to rely on."""
    return MODELS_PER_COEFFICIENT * (features + 1)


def models_to_rely_on(space: search_spaces.Space) -> int:
    """:func:`models_needed` for the features some layer of `space` has (what its fit frees); 22 for the
    default space."""
    from latency_lut import costmodel

    return models_needed(int(costmodel.specs_features(space.all_layers()).any(axis=0).sum()))


def fit_notes(models: int, features: int) -> list[str]:
    """What a user should know about a table fitted to `models` whole models with `features` features."""
    if models >= models_needed(features):
        return []
    return [
        f"{models} models for {features + 1} coefficients: the bounds hold the fit together, but its error is "
        f"uncertain; time {models_needed(features)} or more for a table to rely on"
    ]


def _report_fitted(args: argparse.Namespace, lut: latency_lut.LUT) -> int:
    prov = lut.meta["provenance"]
    err = prov["error"]
    notes = fit_notes(len(prov["points"]), len(prov["fitted_features"]))
    if not args.json:
        for line in notes:
            note(line)
    info = {
        "device": lut.device,
        "backend": lut.backend,
        "entries": len(lut.entries),
        "path": str(lut.path),
        "models": len(prov["points"]),
        "fitted_features": prov["fitted_features"],
        "error": err,
        **({"measuring_s": prov["measuring_s"]} if "measuring_s" in prov else {}),
        "notes": notes,
    }
    report(
        args,
        info,
        f"wrote {info['path']}: {info['entries']} entries fitted to {info['models']} whole models "
        f"(features {', '.join(prov['fitted_features'])}); cross-validated MAPE {err['mape_pct']}%, "
        f"{err['within_10_pct']}% within ±10%, Kendall tau {err['kendall_tau']}",
    )
    return 0


class LutValidateCommand(Command):
    name = "lut validate"
    help = "predicted vs measured end-to-end latency of random subnets"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--device", help="table to validate (default: the default device)")
        parser.add_argument("--samples", type=int, default=50, help="random subnets (default: %(default)s)")
        parser.add_argument("--passes", type=int, default=7, help="interleaved timing passes (default: %(default)s)")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--plot", help="write a scatter plot of predicted against measured (PNG)")

    def run(self, args: argparse.Namespace) -> int:
        if args.samples < 3:
            raise BadInput(f"--samples must be at least 3, got {args.samples}")
        lut = latency_lut.load(args.device)
        with progress_bar(args) as progress:
            result = validate(lut, samples=args.samples, seed=args.seed, passes=args.passes, progress=progress)
        if args.plot:
            plot_validation(result, args.plot)
        if args.json:
            print_json(result)
            return 0
        print(f"{lut.device} ({lut.backend}, {lut.threads} thread(s)): {result['samples']} random subnets of {lut.space.name}")
        if result["host_notice"]:
            print(f"note: {result['host_notice']}")
        if "reference" in result:
            ref = result["reference"]
            print(
                f"in units of the table's reference models (timed in the same passes: {ref['now_ms']:.3f} ms now, "
                f"{ref['table_ms']:.3f} ms at the build; speed now {ref['speed_now']:.3f}x); in this moment's ms: "
                f"MAPE {result['raw_mape'] * 100:.2f}%, within ±10% {result['raw_within_10pct'] * 100:.0f}%"
            )
        print(
            f"MAPE {result['mape'] * 100:.2f}%   within ±10%: {result['within_10pct'] * 100:.0f}%   "
            f"Kendall tau {result['kendall_tau']:.3f}   Spearman {result['spearman']:.3f}"
        )
        print(
            f"this machine now runs at {result['speed_ratio']:.3f}x the table's times (median measured / predicted); "
            f"rescaled by that, MAPE {result['mape_rescaled'] * 100:.2f}%"
        )
        print("worst cases:")
        rows = [
            [r["id"], f"{r['predicted_ms']:.3f}", f"{r['measured_ms']:.3f}", f"{r['error_pct']:+.1f}%"] for r in result["worst"]
        ]
        print(table(rows, ["arch", "predicted ms", "measured ms", "error"]))
        if args.plot:
            print(f"plot: {args.plot}")
        return 0


class LutExportBlocksCommand(Command):
    name = "lut export-blocks"
    help = "per-layer Core ML packages for measuring on a phone or Mac"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--backend", default="coreml", help="coreml (the only one: packages for Apple devices)")
        parser.add_argument("--out", required=True, help="directory to write the packages and manifest.json to")
        parser.add_argument("--space", default=DEFAULT_SPACE, help="space to cover (default: %(default)s)")
        parser.add_argument("--precision", default="fp16", choices=("fp16", "fp32"))
        parser.add_argument("--calibration-models", type=int, default=8, help="random whole models to export for calibration")

    def run(self, args: argparse.Namespace) -> int:
        if args.backend != "coreml":
            raise BadInput(f"export-blocks writes Core ML packages: --backend must be coreml, got {args.backend!r}")
        with progress_bar(args, "package") as progress:
            manifest = export_blocks(
                args.space, args.out, precision=args.precision, calibration_models=args.calibration_models, progress=progress
            )
        info = {
            "out": args.out,
            "blocks": len(manifest["blocks"]),
            "models": len(manifest["models"]),
            "manifest": str(Path(args.out) / "manifest.json"),
        }
        report(
            args,
            info,
            f"wrote {info['blocks']} layer packages and {info['models']} calibration models to {args.out} "
            f"(manifest {info['manifest']}); measure them on the device, then 'nas lut import FILE --device NAME'",
        )
        return 0


class LutImportCommand(Command):
    name = "lut import"
    help = "read phone measurements (JSON or CSV of key -> ms) into a table"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("file", metavar="FILE", help="measurements: JSON {blocks: {key: ms}, models: {id: ms}} or CSV key,ms")
        parser.add_argument("--device", help="name of the table to write")
        parser.add_argument("--space", default=DEFAULT_SPACE, help="space the keys belong to (default: %(default)s)")
        parser.add_argument("--manifest", help="the export's manifest.json (to calibrate on whole-model measurements)")
        parser.add_argument("--backend", default="coreml", help="backend the measurements were taken with (default: %(default)s)")
        parser.add_argument("--out", help="table file to write (default: $NAS_HOME/luts/DEVICE.json)")

    def run(self, args: argparse.Namespace) -> int:
        if not args.device:
            raise BadInput("--device NAME is required (the name to give the table)")
        out = args.out or _in_user_dir(f"{args.device}.json")
        lut = import_measurements(args.file, args.device, out, space=args.space, backend=args.backend, manifest=args.manifest)
        info = {
            "device": lut.device,
            "entries": len(lut.entries),
            "path": str(lut.path),
            "calibrated_on": lut.calibration.fitted_on,
        }
        report(args, info, f"wrote {info['path']}: {info['entries']} entries, calibrated on {info['calibrated_on']} whole models")
        return 0


class LutExportModelsCommand(Command):
    name = "lut export-models"
    help = "a few whole subnets to time on a device, chosen so that 'nas lut fit' is well-conditioned"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--backend", default="coreml", choices=list(FORMATS), help="format to write (default: %(default)s)")
        parser.add_argument(
            "--n",
            type=int,
            help="number of models (default: two per coefficient of the space's fit, 22 for the default space; fewer give "
            "a rougher table)",
        )
        parser.add_argument("--out", required=True, help="directory to write the models and manifest.json to")
        parser.add_argument("--space", default=DEFAULT_SPACE, help="space to cover (default: %(default)s)")
        parser.add_argument("--precision", default="fp16", choices=("fp16", "fp32"), help="Core ML precision")
        parser.add_argument("--seed", type=int, default=0)

    def run(self, args: argparse.Namespace) -> int:
        if args.n is not None and args.n < 3:
            raise BadInput(f"--n must be at least 3, got {args.n}")
        space = search_spaces.load(args.space)
        n = args.n if args.n is not None else models_to_rely_on(space)
        with progress_bar(args, "model") as progress:
            manifest = export_models(
                space, args.backend, n, args.out, seed=args.seed, precision=args.precision, progress=progress
            )
        info = {"out": args.out, "models": len(manifest["models"]), "manifest": str(Path(args.out) / "manifest.json")}
        report(
            args,
            info,
            f"wrote {info['models']} models to {args.out} (manifest {info['manifest']}); time them on the device, then "
            f"'nas lut fit --device NAME --measurements FILE --manifest {info['manifest']}'",
        )
        return 0


class LutFitCommand(Command):
    name = "lut fit"
    help = "a table for a device from whole-model timings of 'nas lut export-models'"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--device", required=True, help="name of the table to write")
        parser.add_argument("--measurements", required=True, help="JSON {models: {id: ms}} or CSV key,ms")
        parser.add_argument("--manifest", required=True, help="the export's manifest.json")
        parser.add_argument("--out", help="table file to write (default: $NAS_HOME/luts/DEVICE.json)")

    def run(self, args: argparse.Namespace) -> int:
        out = args.out or _in_user_dir(f"{args.device}.json")
        lut = fit_table(args.measurements, args.manifest, args.device, out)
        return _report_fitted(args, lut)


__all__ = [
    "LutExportModelsCommand",
    "LutFitCommand",
    "LutListCommand",
    "LutBuildCommand",
    "LutValidateCommand",
    "LutExportBlocksCommand",
    "LutImportCommand",
]
