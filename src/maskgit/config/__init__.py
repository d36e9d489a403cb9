"""Configuration: where the Hydra configs are (`CONF_DIR`), what each setting takes (`setting`,
`settings`), composing configs outside train.py / eval.py (`compose`) and keeping them with a run
(`record`).

This file imports nothing of Hydra: the networks' code reads `CONF_DIR` too.
"""

from __future__ import annotations

from pathlib import Path

CONF_DIR = Path(__file__).resolve().parents[3] / "conf"  # a source checkout's conf/
