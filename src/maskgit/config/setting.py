"""What one setting takes (`Setting`: its type, range or choices) and the one-line error when a value
does not fit. Plain Python (no Hydra), so the decoding settings can declare theirs beside their fields
(`maskgit.decoding.settings`); the table of every setting is `maskgit.config.settings`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same(value: Any, choice: Any) -> bool:
    """Equal and of the same type: 1 is not True, 64.0 is not 64."""
    return type(value) is type(choice) and value == choice


def _yaml(value: Any) -> str:
    """A value as it is written on the command line: true, null, auto, 3."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


@dataclass(frozen=True)
class Setting:
    """What one setting takes. kind: int | float | bool | choice | path | devices | interval."""

    kind: str
    what: str = ""  # a short phrase for the message: what it is, or what special values mean
    min: float | None = None
    max: float | None = None
    min_inclusive: bool = True
    max_inclusive: bool = True
    choices: tuple[Any, ...] | Callable[[], Iterable[Any]] = ()  # a callable: read where they live
    null: bool = False
    also: tuple[Any, ...] = ()  # other values taken as they are (e.g. trainer.deterministic=warn)

    def valid_choices(self) -> tuple[Any, ...]:
        return tuple(self.choices() if callable(self.choices) else self.choices)

    def in_range(self, x: float) -> bool:
        if self.min is not None and not (x >= self.min if self.min_inclusive else x > self.min):
            return False
        return self.max is None or (x <= self.max if self.max_inclusive else x < self.max)

    def fits(self, value: Any) -> bool:
        if value is None:
            return self.null
        if any(_same(value, a) for a in self.also):
            return True
        if self.kind == "int":
            return _is_int(value) and self.in_range(value)
        if self.kind == "float":
            return _is_number(value) and math.isfinite(value) and self.in_range(value)
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind == "path":
            return isinstance(value, str)
        if self.kind == "choice":
            return any(_same(value, c) for c in self.valid_choices())
        if self.kind == "devices":  # Lightning's trainer.devices
            if isinstance(value, list | ListConfig):
                return len(value) > 0 and all(_is_int(v) and v >= 0 for v in value)
            return value == "auto" or (_is_int(value) and (value >= 1 or value == -1))
        if self.kind == "interval":  # Lightning's val_check_interval: batches, or a fraction of an epoch
            return (_is_int(value) and value >= 1) or (isinstance(value, float) and 0 < value <= 1)
        raise ValueError(f"unknown setting kind {self.kind!r}")

    def range_text(self) -> str:
        low = None if self.min is None else f"{'>=' if self.min_inclusive else '>'} {_num(self.min)}"
        high = None if self.max is None else f"{'<=' if self.max_inclusive else '<'} {_num(self.max)}"
        return " and ".join(p for p in (low, high) if p)

    def expected(self) -> str:
        """The type and range in words, e.g. `a number >= 0` or `true, false or warn`."""
        if self.kind == "int" and self.min == 1 and self.min_inclusive and self.max is None:
            ways = ["a positive integer"]
        elif self.kind in ("int", "float"):
            ways = [f"{'an integer' if self.kind == 'int' else 'a number'} {self.range_text()}".rstrip()]
        else:
            ways = {"bool": ["true", "false"], "path": ["a path"],
                    "devices": ["a positive integer", "-1 (every device)", "auto",
                                "a list of device indices"],
                    "interval": ["a positive integer (batches)",
                                 "a number > 0 and <= 1 (a fraction of an epoch)"]}[self.kind]
        ways += [_yaml(a) for a in self.also] + (["null"] if self.null else [])
        return ways[0] if len(ways) == 1 else f"{', '.join(ways[:-1])} or {ways[-1]}"

    def problem(self, key: str, value: Any) -> str | None:
        """The one-line error for `key=value`, or None when the value fits."""
        if self.fits(value):
            return None
        if self.kind == "choice":
            names = (_yaml(c) for c in (*self.valid_choices(), *self.also, *[None] * self.null))
            valid = ", ".join(dict.fromkeys(names))  # once each: Lightning takes both 32 and "32"
            return f"unknown {key} {value!r}; valid: {valid}"
        shown = value
        if self.kind == "float" and _is_number(value):
            shown = float(value)
        elif isinstance(value, DictConfig | ListConfig):
            shown = OmegaConf.to_container(value)
        note = f" ({self.what})" if self.what else ""
        return f"{key} must be {self.expected()}{note}, got {shown!r}"


def integer(min: int | None = None, max: int | None = None, what: str = "", *, null: bool = False,
            also: tuple[Any, ...] = ()) -> Setting:
    return Setting("int", what, min, max, null=null, also=also)


def number(min: float | None = None, max: float | None = None, what: str = "", *, null: bool = False,
           min_inclusive: bool = True, max_inclusive: bool = True) -> Setting:
    return Setting("float", what, min, max, min_inclusive, max_inclusive, null=null)


def flag(what: str = "", *, also: tuple[Any, ...] = ()) -> Setting:
    return Setting("bool", what, also=also)


def choice(choices: tuple[Any, ...] | Callable[[], Iterable[Any]], *, null: bool = False) -> Setting:
    return Setting("choice", choices=choices, null=null)


def path(what: str = "", *, null: bool = True) -> Setting:
    return Setting("path", what, null=null)


def names_in(module: str, name: str, sort: bool = False) -> Callable[[], tuple[Any, ...]]:
    """The valid values where the code that reads the setting keeps them (imported when needed)."""
    def read() -> tuple[Any, ...]:
        values = tuple(getattr(import_module(module), name))
        return tuple(sorted(values)) if sort else values
    return read
