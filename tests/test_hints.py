"""Every setting an error message tells the user to set or check exists in a composed config."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from conftest import compose_config
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
ERRORS = {"ConfigError", "CheckpointError", "DataError", "MaskGITError"}
# `key=value`, `(check key)`, `set key`: the ways a message names a setting.
NAMED = re.compile(r"(?<![\w./$-])([a-z][a-z_0-9]*(?:\.[a-z_0-9]+)+)(?==)"
                   r"|\(check ([a-z][a-z_0-9.]*)\)|\bset ([a-z][a-z_0-9]*\.[a-z_0-9.]+)")


def _literal(node: ast.AST) -> str:
    """The literal text of a message expression; every interpolated value becomes `{}`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(_literal(v) if isinstance(v, ast.Constant) else "{}" for v in node.values)
    if isinstance(node, ast.BinOp):
        return _literal(node.left) + _literal(node.right)
    return "{}"


def error_texts() -> list[tuple[str, str]]:
    """(file:line, the constant text of the message) of every `raise SomeError(...)` in src/."""
    found = []
    for path in sorted((ROOT / "src").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)):
                continue
            func = node.exc.func
            if getattr(func, "id", getattr(func, "attr", None)) not in ERRORS:
                continue
            text = "".join(_literal(arg) for arg in node.exc.args)
            found.append((f"{path.relative_to(ROOT)}:{node.lineno}", text))
    return found


def named_settings(text: str) -> list[str]:
    return [next(g for g in m.groups() if g) for m in NAMED.finditer(text)]


def test_the_scan_finds_named_settings():
    assert named_settings("no VQGAN weights: set vqgan.ckpt_path=/path (check vqgan.ckpt_path); "
                          "total_iter=0, model.mvtm.masking") == ["vqgan.ckpt_path", "vqgan.ckpt_path"]
    assert len(error_texts()) > 40


def test_every_named_setting_exists(tmp_path, cache_dir):
    variants = [("train", []), ("train", ["data=image_folder"]), ("eval", ["ckpt_path=x"]),
                ("quickstart", [])]
    configs = [compose_config(name, overrides, tmp_path, cache_dir) for name, overrides in variants]
    missing = []
    for where, text in error_texts():
        for key in named_settings(text):
            if key.startswith("hydra."):  # the launcher's settings exist once it is chosen
                continue
            if not any(OmegaConf.select(cfg, key, default="<absent>", throw_on_resolution_failure=False)
                       != "<absent>" for cfg in configs):
                missing.append(f"{where}: {key}")
    assert not missing, missing
