"""Where the repository's Hydra configs are (no Hydra import: the networks' code reads this too)."""

from __future__ import annotations

from pathlib import Path

CONF_DIR = Path(__file__).resolve().parents[3] / "conf"  # a source checkout's conf/
