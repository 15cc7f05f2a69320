"""Command-line flags built from the config dataclasses, so each default and its help text is
defined once (in auxpretrain.config). A flag defaults to "not given" (None): only the flags a
user gives override a config's defaults or a --config file."""

from __future__ import annotations

import argparse
from typing import Any, Dict, Iterable, Mapping, Optional

from auxpretrain.config import default_of, help_of
from auxpretrain.errors import ConfigError


def shown(value: Any) -> str:
    """A default as the help text shows it."""
    if isinstance(value, Mapping):
        return ",".join(f"{k}={v:g}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, bool):
        return "on" if value else "off"
    return "none" if value is None else str(value)


def add(parser, cls: type, field: str, *flags: str, help: Optional[str] = None, default_text: Optional[str] = None,
        **kwargs) -> None:
    """Adds the flag of config field `cls.field` (default `--field-name`), its help text and its
    default taken from the dataclass. `kwargs` go to argparse (type, choices, metavar, action...)."""
    flags = flags or ("--" + field.replace("_", "-"),)
    default = default_of(cls, field)
    if "type" not in kwargs and "action" not in kwargs and default is not None \
            and not isinstance(default, (bool, Mapping)):
        kwargs["type"] = type(default)
    text = help or help_of(cls, field)
    parser.add_argument(*flags, dest=field, default=None,
                        help=f"{text} (default {default_text or shown(default)})", **kwargs)


def switch(parser, cls: type, field: str, flag: str, value: bool, help: str) -> None:
    """A flag without an argument that sets bool field `cls.field` to `value`."""
    parser.add_argument(flag, dest=field, action="store_const", const=value, default=None,
                        help=f"{help} (default: {field.replace('_', ' ')} {shown(default_of(cls, field))})")


def given(args: argparse.Namespace, fields: Iterable[str]) -> Dict[str, Any]:
    """The values of `fields` that were given on the command line."""
    return {f: getattr(args, f) for f in fields if getattr(args, f, None) is not None}


def parse_weights(text: str, flag: str) -> Dict[str, float]:
    """'a=1,b=0.5' or 'a,b' -> {'a': 1.0, 'b': 0.5}."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, weight = part.partition("=")
        try:
            out[name.strip()] = float(weight) if weight else 1.0
        except ValueError:
            raise ConfigError(f"{flag} {text!r}: {weight!r} is not a number") from None
    if not out:
        raise ConfigError(f"{flag} is empty")
    return out
