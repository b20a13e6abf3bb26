"""The ``morphsweep`` command line.

    morphsweep train trial.yaml [-o DIR] [--set key=value ...] [--no-resume]
    morphsweep apply structure.json --model SPEC|seed.keras -o small.keras [--keep-weights]

Heavy imports (TensorFlow, Ray, MLflow) happen inside the command that needs them, so errors in
arguments are reported at once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml


def _parse_value(text: str) -> Any:
    value = yaml.safe_load(text)
    return text if value is None and text not in ("null", "~", "") else value


def _overrides(pairs: Sequence[str]) -> dict[str, Any]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"morphsweep: --set needs key=value, but got {pair!r}")
        out[key] = _parse_value(value)
    return out


def cmd_train(args: argparse.Namespace) -> int:
    from trainers.config import TrialConfig
    from trainers.errors import TrialConfigError, TrialFailed

    try:
        overrides = _overrides(args.set)
        if args.output:
            overrides["output_dir"] = args.output
        config = TrialConfig.from_yaml(args.config, overrides)
    except TrialConfigError as exc:
        print(f"morphsweep train: {exc}", file=sys.stderr)
        return 2
    from trainers.trial import run_trial

    try:
        result = run_trial(config, resume=not args.no_resume)
    except TrialConfigError as exc:
        print(f"morphsweep train: {exc}", file=sys.stderr)
        return 2
    except TrialFailed as exc:
        print(f"morphsweep train: trial failed: {exc}", file=sys.stderr)
        return 1
    summary = result.summary()
    print(
        f"\n{result.cost_name}: seed {summary['seed_cost']:.4g} -> rebuilt {summary['rebuilt_cost']:.4g} "
        f"({summary['cost_fraction']:.1%}); retrained val accuracy {result.retrained_val_accuracy:.4f}"
    )
    print(f"structure: {result.structure_path}\nmodel:     {result.model_path}\nmetrics:   {result.metrics_path}")
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    from trainers.errors import TrialConfigError
    from trainers.morphnet.errors import MorphNetError

    try:
        model = _load_seed_model(args)
        from trainers.morphnet.tfkeras import apply_structure, model_cost

        small = apply_structure(model, args.structure, keep_weights=args.keep_weights, min_channels=args.min_channels)
    except (MorphNetError, TrialConfigError) as exc:
        print(f"morphsweep apply: {exc}", file=sys.stderr)
        return 2
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    small.save(args.output)
    seed, new = model_cost(model), model_cost(small)
    print(f"FLOPs: seed {seed:.4g} -> {new:.4g} ({new / seed:.1%}); params {model.count_params()} -> {small.count_params()}")
    print(f"wrote {args.output}")
    return 0


def _load_seed_model(args: argparse.Namespace) -> Any:
    from trainers.errors import TrialConfigError

    if args.model.endswith(".keras"):
        if not Path(args.model).is_file():
            raise TrialConfigError(f"--model file {args.model!r} does not exist")
        from trainers.morphnet.tfkeras.compat import keras
        from trainers.morphnet.tfkeras.gating import LogisticSigmoidGating

        return keras.models.load_model(args.model, custom_objects={"LogisticSigmoidGating": LogisticSigmoidGating})
    from trainers.data import load_dataset
    from trainers.models import build_model

    if args.input_shape:
        shape = tuple(int(d) for d in args.input_shape.split(","))
        classes = args.num_classes
    else:
        data = load_dataset(args.dataset).resized(args.image_size)
        shape, classes = data.input_shape, data.num_classes
    return build_model(args.model, shape, classes, args.width)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="morphsweep", description="MorphNet structure learning, swept.")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="run one structure-learning trial locally")
    train.add_argument("config", help="trial YAML (see trainers/examples/)")
    train.add_argument("-o", "--output", help="output directory (overrides output_dir)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
    train.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    train.set_defaults(func=cmd_train)

    apply = sub.add_parser("apply", help="rebuild a model at a learned structure")
    apply.add_argument("structure", help="structure JSON (from `train` or `pick`)")
    apply.add_argument("--model", required=True, help="seed model: a .keras file, zoo:<name>, keras.applications.<Name> or module:function")
    apply.add_argument("-o", "--output", required=True, help="where to save the rebuilt .keras model")
    apply.add_argument("--dataset", default="digits", help="dataset the seed model was built for (gives input shape and classes)")
    apply.add_argument("--input-shape", help="e.g. 32,32,3 (instead of --dataset)")
    apply.add_argument("--num-classes", type=int, default=10)
    apply.add_argument("--image-size", type=int, default=None)
    apply.add_argument("--width", type=int, default=32, help="zoo model width (model_width of the trial)")
    apply.add_argument("--keep-weights", action="store_true", help="carry the surviving channels' weights")
    apply.add_argument("--min-channels", type=int, default=0)
    apply.set_defaults(func=cmd_apply)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
