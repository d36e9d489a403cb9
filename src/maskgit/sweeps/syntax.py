"""`key=a..b` on the command line: an inclusive integer range, rewritten into Hydra's sweep syntax.

`total_iter=1..28` becomes `total_iter=range(1,29)`; inside a comma list the ranges are spelled out
(`total_iter=1..3,8` becomes `total_iter=1,2,3,8`). Anything else is passed through untouched:
flags, quoted values, Hydra functions such as `range(...)` or `choice(...)`, and paths (`..` with a
`/` beside it, or a side that is not a number, e.g. `data.root=..`).
"""

from __future__ import annotations

import re

from maskgit.errors import ConfigError

_OVERRIDE = re.compile(r"^(?P<key>(?:~|\+\+|\+)?[\w.\-/@]+)=(?P<value>.*)$", re.DOTALL)
_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_INTEGER = re.compile(r"^[+-]?\d+$")


def _as_range(key: str, item: str) -> tuple[int, int] | None:
    """(a, b) when `item` is an `a..b` range, None when it is some other value."""
    if ".." not in item or "/" in item:
        return None
    a, b = (side.strip() for side in item.split("..", 1))
    if not (_NUMBER.match(a) or _NUMBER.match(b)):
        return None  # not a number on either side: some other value (a path, a string)
    if not (_INTEGER.match(a) and _INTEGER.match(b)):
        raise ConfigError(f"{key}={item}: a range a..b takes two integers (e.g. {key}=1..28)")
    lo, hi = int(a), int(b)
    if hi < lo:
        raise ConfigError(f"{key}={item}: empty range, the end {hi} is below the start {lo} "
                          f"(a..b includes both ends: {key}={hi}..{lo}?)")
    return lo, hi


def expand_item(item: str) -> str:
    """One command-line item, with `a..b` ranges in its value rewritten for Hydra."""
    match = _OVERRIDE.match(item)
    if match is None or ".." not in match["value"]:
        return item
    key, value = match["key"], match["value"]
    if any(c in value for c in "()[]{}'\"\\ "):
        return item  # a Hydra function, a list/dict literal or a quoted value: not ours
    parts = value.split(",")
    ranges = [_as_range(key, p) for p in parts]
    if all(r is None for r in ranges):
        return item
    if len(parts) == 1:
        lo, hi = ranges[0]
        return f"{key}=range({lo},{hi + 1})"
    values: list[str] = []
    for part, r in zip(parts, ranges, strict=True):
        values.extend([str(v) for v in range(r[0], r[1] + 1)] if r else [part])
    return f"{key}={','.join(values)}"


def expand_ranges(argv: list[str]) -> list[str]:
    """`sys.argv` with every `key=a..b` rewritten (argv[0], the program, is kept as it is).

    Raises ConfigError for a range that is not two integers or whose end is below its start.
    """
    return argv[:1] + [expand_item(a) for a in argv[1:]]


def require_override(argv: list[str], key: str, message: str, *, unless: dict[str, str]) -> None:
    """Fail fast, before the heavy imports, when the command line cannot name a required setting.

    Only the obvious case is caught: no `key=` override, none of the `unless` values, and no flag
    other than -m/--multirun (flags such as --help or --config-name may supply or not need it).
    """
    args = argv[1:]
    if any(a.startswith("-") and a not in ("-m", "--multirun") for a in args):
        return
    given = {m["key"].lstrip("+~"): m["value"] for m in map(_OVERRIDE.match, args) if m}
    if key in given or any(given.get(k) == v for k, v in unless.items()):
        return
    raise ConfigError(message)
