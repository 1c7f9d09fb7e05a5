"""Command line of fine-tuning: `python caduceus_lrp/train_caduceus_finetune.py [--flags]` (also under torchrun).

Every field of TrainConfig and DataConfig is a flag; `--config file.yaml|json` sets fields first
(a file written as train_config.yaml by an earlier run works), explicit flags win. With no
arguments: fine-tune the shipped demo backbone on the embedded dataset into final_models/ and plots/.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import re
import sys
import types
import typing
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import the package, not this folder's modules
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from caduceus_lrp.data import DataConfig, add_arguments  # noqa: E402
from caduceus_lrp.errors import InputError, cli_entry  # noqa: E402
from caduceus_lrp.training import TrainConfig, run_training  # noqa: E402

__all__ = ["build_parser", "config_from_argv", "main"]

_TRAIN_FIELDS = [f for f in dataclasses.fields(TrainConfig) if f.name != "data"]
_DATA_FIELDS = dataclasses.fields(DataConfig)


def _field_type(hint):
    """(element type, is a list) of a type hint such as int, str | None, list[float] | None."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    options = [o for o in options if o is not type(None)]
    lists = [o for o in options if typing.get_origin(o) is list]
    return (typing.get_args(lists[0])[0], True) if lists else (options[0], False)


def _is_a(value, kind) -> bool:
    """Whether a parsed YAML/JSON value fits a field of type `kind` (an int fits a float)."""
    if isinstance(value, bool) or kind is bool:
        return isinstance(value, bool) and kind is bool
    return isinstance(value, kind) or (kind is float and isinstance(value, int))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train_caduceus_finetune.py",
        description="Fine-tune Caduceus (top layers + EPI head) or the CNN baseline on sequence "
                    "data; with no arguments, the demo run on the embedded dataset.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--config", help="YAML or JSON file of fields (train_config.yaml of an "
                        "earlier run works); explicit flags override it")
    hints = typing.get_type_hints(TrainConfig)
    group = parser.add_argument_group("training")
    for f in _TRAIN_FIELDS:
        kind, many = _field_type(hints[f.name])
        options = {"default": f.default, "help": f.metadata["help"]}
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        else:
            options.update(type=kind, nargs="+" if many else None)
        group.add_argument("--" + f.name.replace("_", "-"), **options)
    add_arguments(parser.add_argument_group("data"), DataConfig)
    return parser


def _line_of(text: str, key: str) -> str:
    """'line N' of the first `key:` / `"key":` in a config file's text, or 'line ?'."""
    for n, line in enumerate(text.splitlines(), 1):
        if re.match(rf'\s*"?{re.escape(key)}"?\s*:', line):
            return f"line {n}"
    return "line ?"


def _read_config_file(path: Path) -> dict:
    """The fields of a YAML/JSON config file, flattened (data fields under `data:` or at the top),
    type-checked against the dataclasses."""
    import yaml

    try:
        text = path.read_text()
    except OSError as err:
        raise InputError(f"{path}: cannot read the config file ({err.strerror})") from None
    try:
        raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: line {err.lineno}: not valid JSON ({err.msg})") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "line ?"
        raise InputError(f"{path}: {where}: not valid YAML ({getattr(err, 'problem', err)})") from None
    raw = raw or {}
    if not isinstance(raw, dict):
        raise InputError(f"{path}: line 1: expected a mapping of field names to values")
    nested = raw.pop("data", None) if isinstance(raw.get("data"), dict) else {}
    flat = {**raw, **nested}
    fields = {f.name: f for f in [*_TRAIN_FIELDS, *_DATA_FIELDS]}
    hints = typing.get_type_hints(TrainConfig) | typing.get_type_hints(DataConfig)
    for key, value in flat.items():
        if key not in fields:
            raise InputError(f"{path}: {_line_of(text, key)}: unknown field {key!r}")
        kind, many = _field_type(hints[key])
        items = value if isinstance(value, list) and many else [value]
        bad = [v for v in items if v is not None and not _is_a(v, kind)]
        if bad:
            raise InputError(f"{path}: {_line_of(text, key)}: {key}: expected "
                             f"{'a list of ' if many else ''}{kind.__name__}, got {bad[0]!r}")
    return flat


def config_from_argv(argv=None) -> TrainConfig:
    """The TrainConfig of a command line (config file first, explicit flags override)."""
    parser = build_parser()
    first, _ = parser.parse_known_args(argv)
    if first.config:
        parser.set_defaults(**_read_config_file(Path(first.config)))
    args = parser.parse_args(argv)
    data = DataConfig(**{f.name: getattr(args, f.name) for f in _DATA_FIELDS})
    return TrainConfig(**{f.name: getattr(args, f.name) for f in _TRAIN_FIELDS}, data=data)


@cli_entry
def main(argv=None):
    """Train, write best_model.pt, metrics and plots; print the final validation/test auROC."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = config_from_argv(argv)
    try:
        metrics = run_training(cfg)
    except FloatingPointError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    return metrics


if __name__ == "__main__":
    main()
