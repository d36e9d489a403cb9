"""User-facing errors: one clear line, non-zero exit, no traceback."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class MaskGITError(Exception):
    """A problem the user can fix (bad path, bad config, bad data). Printed as one line."""


class DataError(MaskGITError):
    """The data set on disk is missing or not in the expected layout."""


class CheckpointError(MaskGITError):
    """A checkpoint is missing, not ours, or does not match the model."""


class ConfigError(MaskGITError):
    """A configuration value is invalid."""


def user_error_in(err: BaseException | None) -> MaskGITError | None:
    """The MaskGITError behind `err`, also when a wrapper (e.g. hydra.utils.instantiate) raised it."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, MaskGITError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def exit_on_user_error(fn: Callable[..., T]) -> Callable[..., T]:
    """Turn a MaskGITError escaping `fn` into `error: <message>` on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            user_err = user_error_in(err)
            if user_err is None:
                raise
            print(f"error: {user_err}", file=sys.stderr, flush=True)
            sys.exit(2)

    return wrapper
