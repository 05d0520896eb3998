"""The config as the command line builds it, and the check every numeric value passes.

:func:`load` reads ``path/to/experiment.py[:variant]`` and applies the
``--config.section.key=value`` overrides that :func:`split_overrides` took from the
command line; each override is parsed as its default's type and names an existing key (the
``data`` section holds every key its dataset accepts, the ones the config leaves out at
:mod:`kacjax.data`'s defaults).
:func:`check_numbers` is the generic rule for every number of a config, tuples
included: finite, and non-negative unless it is the key's documented sentinel
(:data:`SENTINELS`). The range checks of each mode come after it (:mod:`kacjax.cli.modes`).
"""

from __future__ import annotations

import ast
import math
import os
import re
from typing import Iterator, Sequence

from ml_collections import ConfigDict

from kacjax.configs.defaults import load_config

# keys whose -1 means "not a value": the labels cycle through the classes, the last stage, the heads by count
SENTINELS = {"sample.labels": -1, "sample.stage": -1, "model.num_head_channels": -1}
# PRNG seeds are 32-bit; guidance weights: (1 + w) u_y - w u_null is far past any useful guidance at w = 1000
# (published sweeps stay below 10) and overflows float32 at about 1e37
MAX_GUIDANCE = 1000.0
UPPER_BOUNDS = {"seed": 2**32, **{key: MAX_GUIDANCE for key in (
    "sample.w", "distill.w", "distill.w_range", "evaluate.guidance_sweep", "evaluate.guidance_ws")}}
_OVERRIDE = re.compile(r"^--?(no)?config\.([^=\s]+)(?:=(.*))?$", re.DOTALL)
_NAMED = {"nan": math.nan, "inf": math.inf, "true": True, "false": False}
_NUMERIC = {"integer", "number"}


class ConfigError(ValueError):
    """A config file, variant, override or value that cannot run; the message says which and why."""


def split_overrides(argv: Sequence[str]) -> tuple:
    """``(argv without the overrides, [(key, raw value), ...])`` for ``--config.key=value``,
    ``--config.key value``, ``--config.key`` (true) and ``--noconfig.key`` (false)."""
    rest, overrides, args = [], [], list(argv)
    while args:
        arg = args.pop(0)
        found = _OVERRIDE.match(arg)
        if not found:
            rest.append(arg)
            continue
        negated, key, raw = found.groups()
        if negated:
            raw = "false" if raw is None else raw
        elif raw is None:
            raw = args.pop(0) if args and not args[0].startswith("--") else "true"
        overrides.append((key, raw))
    return rest, overrides


def load(spec: str, overrides: Sequence[tuple] = ()) -> ConfigDict:
    """The locked config of ``path.py[:variant]`` with ``overrides`` applied; raises ConfigError."""
    path, _, _ = spec.partition(":")
    if not os.path.isfile(path):
        folder = os.path.dirname(path) or "."
        found = sorted(f for f in os.listdir(folder) if f.endswith(".py")) if os.path.isdir(folder) else []
        raise ConfigError(f"no config file {path or repr(path)}" + (f"; {folder}/ holds {', '.join(found)}" if found else ""))
    try:
        config = load_config(spec)
    except SyntaxError as err:
        raise ConfigError(f"{path}: line {err.lineno}: {err.msg}") from None
    except Exception as err:  # noqa: BLE001 - the file's own error, in one line
        if isinstance(err, AttributeError) and "get_config" in str(err):
            raise ConfigError(f"{path} defines no get_config(variant='')") from None
        first = (str(err).strip().splitlines() or [""])[0]
        kind = "" if isinstance(err, ValueError) else f"{type(err).__name__}: "  # ValueError: an unknown variant
        raise ConfigError(f"{path}: {kind}{first}") from None
    if not isinstance(config, ConfigDict):
        raise ConfigError(f"{path}: get_config() returned a {type(config).__name__}; it must return an "
                          "ml_collections.ConfigDict (start from kacjax.configs.defaults.base_config())")
    dataset = [o for o in overrides if o[0] == "data.name"]  # first: the dataset decides the data keys
    for key, raw in dataset:
        _override(config, key, raw)
    _declare_data_keys(config)
    for key, raw in overrides:
        if key != "data.name":
            _override(config, key, raw)
    config.lock()
    return config


def _declare_data_keys(config: ConfigDict) -> None:
    """Adds every data key the dataset accepts that the config leaves out, at the default of
    :mod:`kacjax.data` (their one home), so that each documented key can be overridden."""
    from kacjax.data import check_data_config

    try:
        options = check_data_config(config.data)
    except ValueError as err:  # an unknown dataset or data key, a toy2d target that cannot be drawn
        raise ConfigError(f"bad config: {err}") from None
    for key, value in options.items():
        if key not in config.data:
            config.data[key] = value


def _override(config: ConfigDict, key: str, raw: str) -> None:
    *parents, name = key.split(".")
    section = config
    for depth, part in enumerate(parents):
        if not isinstance(section.get(part), ConfigDict):
            raise _unknown(key, section, parents[:depth])
        section = section[part]
    if name not in section:
        raise _unknown(key, section, parents)
    default = section[name]
    if isinstance(default, ConfigDict):
        raise ConfigError(f"--config.{key}: {key} is a section; set its keys one by one "
                          f"(--config.{key}.KEY=VALUE; keys: {', '.join(sorted(default.keys()))})")
    try:
        section[name] = _parse(section.get_type(name), default, raw)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"--config.{key}={raw}: {key} {err}") from None


def _unknown(key: str, section: ConfigDict, parents: list) -> ConfigError:
    where = f"section {'.'.join(parents)}" if parents else "the config"
    return ConfigError(f"--config.{key}: unknown config key {key}; {where} has {', '.join(sorted(section.keys()))}")


def _parse(kind: type, default, raw: str):
    """``raw`` as a value of ``kind`` (the default's type); raises ValueError saying what was expected."""
    if kind is bool:
        if raw.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"is true or false, got {raw!r}")
        return raw.lower() in ("true", "1")
    if kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            raise ValueError(f"is {'an integer' if kind is int else 'a number'}, got {raw!r}") from None
    if kind is str:
        return raw
    value = _literal(raw)
    if kind is tuple:
        value = tuple(value) if isinstance(value, (tuple, list)) else (value,)
        wanted = {_kind(v) for v in default}
        allowed = wanted | ({"integer"} if wanted == {"number"} else set())
        if len(wanted) == 1 and not {_kind(v) for v in value} <= allowed:
            raise ValueError(f"holds {wanted.pop()}s like its default {default}, got {value}")
    return value


class _NamedConstants(ast.NodeTransformer):
    def visit_Name(self, node):
        value = _NAMED.get(node.id.lower())
        return node if value is None else ast.Constant(value)


def _literal(raw: str):
    """A Python literal (``nan``, ``inf``, ``true`` and ``false`` included), else ``raw`` itself."""
    try:
        return ast.literal_eval(_NamedConstants().visit(ast.parse(raw.strip(), mode="eval")))
    except (SyntaxError, ValueError):
        return raw


def _kind(value) -> str:
    """A value's kind in words: integer, number (a float), string, or its type's name."""
    if isinstance(value, bool):
        return "bool"
    for kind, name in ((int, "integer"), (float, "number"), (str, "string")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _numbers(node, path: str = "") -> Iterator[tuple]:
    """``(path, key, value)`` of every number under ``node``; a tuple's elements are ``key[i]``."""
    if isinstance(node, ConfigDict):
        for name, child in node.items():
            yield from _numbers(child, f"{path}.{name}" if path else name)
    elif isinstance(node, (tuple, list)):
        kinds = {_kind(v) for v in node}
        if kinds & _NUMERIC and kinds - _NUMERIC:
            raise ConfigError(f"bad config: {path} must hold only numbers, got {tuple(node)}")
        yield from ((f"{path}[{i}]", path, v) for i, v in enumerate(node) if _kind(v) in _NUMERIC)
    elif _kind(node) in _NUMERIC:
        yield path, path, node


def check_numbers(config) -> None:
    """Raises ConfigError naming the first number of ``config`` that is not finite, or negative
    without being its key's sentinel (:data:`SENTINELS`)."""
    for path, key, value in _numbers(config):
        if not math.isfinite(value):
            raise ConfigError(f"bad config: {path} must be a finite number, got {value}")
        if value < 0 and value != SENTINELS.get(key):
            allowed = f" or {SENTINELS[key]}" if key in SENTINELS else ""
            raise ConfigError(f"bad config: {path} must be >= 0{allowed}, got {value}")
        if key in UPPER_BOUNDS and value >= UPPER_BOUNDS[key]:
            raise ConfigError(f"bad config: {path} must be below {UPPER_BOUNDS[key]}, got {value}")
