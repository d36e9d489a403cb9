"""Read weights files safely (`weights_only=True`) and load them strictly with one-line errors."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from torch import Tensor, nn

from maskgit.config import CONF_DIR
from maskgit.errors import CheckpointError
from maskgit.models.vqgan import VQGAN
from maskgit.utils.integrity import damage, seal_path

# Where a wrapping file keeps its state dict, and prefixes a wrapper may put before the keys.
_STATE_KEYS = ("state_dict", "model_state_dict", "model", "vqgan")
_PREFIXES = ("vqgan.", "model.", "module.", "_orig_mod.")
VQGAN_CONF_DIR = CONF_DIR / "vqgan"


def read_weights_file(path: str | Path, setting: str) -> dict[str, Any]:
    """torch.load a file with weights_only=True; `setting` names the config key in errors. A file
    this project wrote is sealed (`maskgit.utils.integrity`): its size and checksum are checked first."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist (check {setting})")
    if seal_path(path).exists() and (problem := damage(path)) is not None:
        raise CheckpointError(f"{path} is damaged: {problem} (check {setting})")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the same user error
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path} is not a readable PyTorch weights file ({first[:160]})") from None
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state dict ({setting})")
    return dict(obj)


def extract_state_dict(obj: Mapping[str, Any]) -> dict[str, Tensor]:
    """The tensor dict inside `obj`: a plain state dict, or one wrapped under a known key."""
    for key in _STATE_KEYS:
        if isinstance(obj.get(key), Mapping):
            return extract_state_dict(obj[key])
    state = {k: v for k, v in obj.items() if isinstance(v, Tensor)}
    if any(k.startswith("vqgan.") for k in state):  # e.g. a stage-1 module: vqgan.* + discriminator.*
        state = {k: v for k, v in state.items() if k.startswith("vqgan.")}
    for prefix in _PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def names(keys: list[str], limit: int = 4) -> str:
    """The first `limit` keys, and how many more."""
    more = f", ... {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def compare_state(expected: Mapping[str, Tensor], state: Mapping[str, Tensor]
                  ) -> tuple[list[str], list[str], list[str]]:
    """(missing, unexpected, wrong-shape) keys of `state` against `expected`, each sorted."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    return missing, unexpected, wrong


def shape_problem(wrong: list[str], expected: Mapping[str, Tensor], state: Mapping[str, Tensor]) -> str:
    k = wrong[0]
    return (f"{len(wrong)} shape mismatches (e.g. {k}: file {tuple(state[k].shape)} vs model "
            f"{tuple(expected[k].shape)})")


def load_strict(module: nn.Module, state: Mapping[str, Tensor], source: str) -> None:
    """load_state_dict(strict=True) whose failure is one line naming missing/unexpected keys."""
    expected = module.state_dict()
    missing, unexpected, wrong = compare_state(expected, state)
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys ({names(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys ({names(unexpected)})")
    if wrong:
        problems.append(shape_problem(wrong, expected, state))
    if problems:
        raise CheckpointError(f"{source} does not match the configured {type(module).__name__}: "
                              + "; ".join(problems))
    module.load_state_dict(state, strict=True)


def build_vqgan(config: Mapping[str, Any], setting: str = "vqgan.ckpt_path") -> VQGAN:
    """A frozen VQGAN from a config holding its architecture and `ckpt_path` (required); errors name
    `setting`, the option that sets that path where the VQGAN is built (eval.py: vqgan_ckpt_path)."""
    arch = {k: v for k, v in config.items() if k != "ckpt_path"}
    vqgan = VQGAN(**arch)
    path = config.get("ckpt_path")
    if not path:
        raise CheckpointError(f"no VQGAN weights: set {setting}=/path/to/VQGAN.pt "
                              "(or the MASKGIT_VQGAN_CKPT environment variable)")
    state = extract_state_dict(read_weights_file(path, setting))
    try:
        load_strict(vqgan, state, f"VQGAN checkpoint {path}")
    except CheckpointError as err:
        fits = [f"vqgan={name}" for name in matching_vqgan_configs(state)]
        if not fits:
            raise
        raise CheckpointError(f"{err}; the file fits {' or '.join(fits)}") from None
    vqgan.eval().requires_grad_(False)
    return vqgan


def matching_vqgan_configs(state: Mapping[str, Tensor], conf_dir: Path = VQGAN_CONF_DIR) -> list[str]:
    """Names of the `vqgan=` configs whose architecture has exactly these keys and shapes (built on
    the meta device: nothing is allocated). Empty when the configs are not beside the package."""
    names = []
    for path in sorted(conf_dir.glob("*.yaml")):
        arch = {k: v for k, v in OmegaConf.to_container(OmegaConf.load(path)).items() if k != "ckpt_path"}
        try:
            with torch.device("meta"):
                expected = VQGAN(**arch).state_dict()
        except Exception:  # noqa: BLE001 - a config that does not build is simply not a match
            continue
        if set(expected) == set(state) and all(expected[k].shape == state[k].shape for k in expected):
            names.append(path.stem)
    return names
