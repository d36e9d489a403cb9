"""A progress bar with an ETA for the whole of a long loop (encoding, features), from one process."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class Advance(Protocol):
    def __call__(self, n: int) -> None: ...


def is_rank_zero() -> bool:
    """True outside DDP and in its first process (the launch sets RANK / LOCAL_RANK)."""
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))) == 0


@contextmanager
def progress(description: str, total: int) -> Iterator[Advance]:
    """`with progress("encoding 15,000 train images", 15000) as advance: ... advance(len(batch))`.

    Other DDP processes and `MASKGIT_PROGRESS=0` get a no-op."""
    if not is_rank_zero() or os.environ.get("MASKGIT_PROGRESS", "1") == "0" or total <= 0:
        yield lambda n: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn())
    bar = Progress(*columns, console=Console(stderr=True))  # stderr: stdout may carry data (--json)
    task = bar.add_task(description, total=total)
    bar.start()
    try:
        yield lambda n: bar.advance(task, n)
    except BaseException:
        bar.live.transient = True  # a failed loop leaves no bar: the error stays the one line
        raise
    finally:
        bar.stop()
