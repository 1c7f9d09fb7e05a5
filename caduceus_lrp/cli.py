"""The command-line layer every command shares: dataclass fields as flags, config files, one-line errors.

A config is a dataclass whose fields carry their help text (`option`). `add_arguments` turns its
fields into `--flags` (nested dataclass fields, such as TrainConfig.data, become their fields'
flags), `from_args` builds the dataclass back from the parsed flags, and `read_config_file`
reads the same fields from a YAML or JSON file, checked against their types. `cli_entry` wraps
a command's `main(argv)`: bad input (an InputError) prints `error: <message>` on one line and
exits with status 2, with no traceback.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import re
import sys
import types
import typing
from pathlib import Path

from .errors import InputError

__all__ = ["option", "add_arguments", "from_args", "flag_names", "read_config_file",
           "set_config_defaults", "cli_entry", "HelpFormatter", "ArgumentParser"]


def option(default, help: str, **metadata):
    """A dataclass field with its --help text (a list default is copied per instance)."""
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default),
                                 metadata={"help": help, **metadata})
    return dataclasses.field(default=default, metadata={"help": help, **metadata})


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown after each option's help; descriptions keep their line breaks."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the package's error convention: a bad flag or value raises InputError, which
    `cli_entry` prints as one line (exit status 2) instead of the usage text."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        raise InputError(f"{self.prog}: {message} (see --help)")


def _field_type(hint):
    """(element type, is a list) of a type hint such as int, str | None, list[str] | None."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    options = [o for o in options if o is not type(None)]
    lists = [o for o in options if typing.get_origin(o) is list]
    return (typing.get_args(lists[0])[0], True) if lists else (options[0], False)


def _default(f):
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def _leaf_fields(config_cls, skip=()):
    """[(field, element type, is a list)] of a dataclass, nested dataclass fields expanded."""
    hints = typing.get_type_hints(config_cls)
    out = []
    for f in dataclasses.fields(config_cls):
        if f.name in skip:
            continue
        kind, many = _field_type(hints[f.name])
        if dataclasses.is_dataclass(kind):
            out += _leaf_fields(kind, skip)
        else:
            out.append((f, kind, many))
    return out


def _nested_names(config_cls) -> set[str]:
    """Names of the fields of `config_cls` (at any depth) that hold a nested dataclass."""
    hints = typing.get_type_hints(config_cls)
    names = set()
    for f in dataclasses.fields(config_cls):
        kind, _ = _field_type(hints[f.name])
        if dataclasses.is_dataclass(kind):
            names |= {f.name} | _nested_names(kind)
    return names


def flag_names(config_cls, skip=()) -> list[str]:
    """The field names that `add_arguments` makes flags of, nested ones included."""
    return [f.name for f, _, _ in _leaf_fields(config_cls, skip)]


def add_arguments(parser, config_cls, skip=(), title=None, defaults=None):
    """Add one --flag per field of the dataclass `config_cls` (help from the field metadata);
    fields of nested dataclasses go to a group of their own, with the values of the parent's
    default instance as their defaults. `skip`: field names left out; `defaults`: an instance
    whose values are the flags' defaults (default: the fields' own)."""
    hints = typing.get_type_hints(config_cls)
    group = parser.add_argument_group(title) if title else parser
    for f in dataclasses.fields(config_cls):
        if f.name in skip:
            continue
        kind, many = _field_type(hints[f.name])
        default = getattr(defaults, f.name) if defaults is not None else _default(f)
        if dataclasses.is_dataclass(kind):
            add_arguments(parser, kind, skip, title=f.name, defaults=default)
            continue
        text = f.metadata.get("help", "")
        if "choices" in f.metadata:  # checked by the config itself, with a one-line error
            text += f" (one of: {', '.join(f.metadata['choices'])})"
        options = {"default": default, "help": text}
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        else:
            options.update(type=kind, nargs="+" if many else None)
        group.add_argument("--" + f.name.replace("_", "-"), **options)


def from_args(config_cls, args, skip=(), **overrides):
    """The dataclass `config_cls` from parsed arguments of `add_arguments` (nested dataclasses
    rebuilt the same way); `overrides` set fields directly."""
    hints = typing.get_type_hints(config_cls)
    values = {}
    for f in dataclasses.fields(config_cls):
        if f.name in overrides or f.name in skip:
            continue
        kind, _ = _field_type(hints[f.name])
        if dataclasses.is_dataclass(kind):
            values[f.name] = from_args(kind, args, skip)
        elif hasattr(args, f.name):
            values[f.name] = getattr(args, f.name)
    return config_cls(**values, **overrides)


def _line_of(text: str, key: str) -> str:
    """'line N' of the first `key:` / `"key":` in a config file's text, or 'line ?'."""
    for n, line in enumerate(text.splitlines(), 1):
        if re.match(rf'\s*"?{re.escape(key)}"?\s*:', line):
            return f"line {n}"
    return "line ?"


def _is_a(value, kind) -> bool:
    """Whether a parsed YAML/JSON value fits a field of type `kind` (an int fits a float)."""
    if isinstance(value, bool) or kind is bool:
        return isinstance(value, bool) and kind is bool
    return isinstance(value, kind) or (kind is float and isinstance(value, int))


def read_config_file(path, config_cls, skip=()) -> dict:
    """The fields of `config_cls` set in a YAML or JSON file, flattened (a nested dataclass's
    fields may sit under its field name, e.g. `data:`, or at the top), each checked against its
    field's type. Unknown keys, wrong types and unreadable files raise InputError naming the
    file and line."""
    import yaml

    path = Path(path)
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
    leaves = {f.name: (kind, many) for f, kind, many in _leaf_fields(config_cls, skip)}
    nested = _nested_names(config_cls)
    flat = {}
    for key, value in raw.items():
        if isinstance(value, dict) and key in nested:
            flat.update(value)  # the fields of a nested dataclass, under its name
        else:
            flat[key] = value
    for key, value in flat.items():
        if key not in leaves:
            raise InputError(f"{path}: {_line_of(text, key)}: unknown field {key!r}")
        kind, many = leaves[key]
        items = value if isinstance(value, list) and many else [value]
        bad = [v for v in items if v is not None and not _is_a(v, kind)]
        if bad:
            raise InputError(f"{path}: {_line_of(text, key)}: {key}: expected "
                             f"{'a list of ' if many else ''}{kind.__name__}, got {bad[0]!r}")
    return flat


def set_config_defaults(parser, argv, config_cls, skip=()) -> None:
    """When argv has `--config FILE`, make the file's fields the parser's defaults, so that
    explicit flags override them."""
    first, _ = parser.parse_known_args(argv)
    if getattr(first, "config", None):
        parser.set_defaults(**read_config_file(first.config, config_cls, skip))


def cli_entry(main):
    """Decorate a command-line `main(argv=None)`: an InputError prints `error: <message>` on one
    line to stderr and exits with status 2, with no traceback; Ctrl-C exits with 130."""

    @functools.wraps(main)
    def wrapper(argv=None, **kwargs):
        try:
            return main(argv, **kwargs)
        except InputError as err:
            message = " ".join(str(err).split())
            print(f"error: {message}", file=sys.stderr)
            raise SystemExit(2) from None
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            raise SystemExit(130) from None

    return wrapper
