"""`train.py ckpt_path=...`: check the checkpoint to resume from before anything is built or trained.

Lightning would find out too, but only after the data is encoded, and as a traceback. Here a missing,
truncated or random file, a weights-only file, another stage's checkpoint or another model size is
one line naming the file (exit 2 through `exit_on_user_error`).
"""

from __future__ import annotations

from collections.abc import Mapping

import lightning as L

from maskgit.errors import CheckpointError
from maskgit.models.checkpoint import read_weights_file

# Parts of a model's state that its checkpoints leave out on purpose (MaskGIT: the frozen VQGAN).
NOT_SAVED = {"MaskGIT": ("vqgan.",)}


def _examples(keys: list[str]) -> str:
    return ", ".join(keys[:2]) + (f", ... {len(keys) - 2} more" if len(keys) > 2 else "")


def check_resume_checkpoint(path: str, model: L.LightningModule) -> None:
    """Refuse `path` in one line unless it is a train.py checkpoint of exactly this model."""
    ckpt = read_weights_file(path, "ckpt_path")  # missing, truncated, random, hostile: one line
    state = ckpt.get("state_dict")
    if not isinstance(state, Mapping) or "global_step" not in ckpt or "optimizer_states" not in ckpt:
        raise CheckpointError(
            f"ckpt_path={path} is not a train.py checkpoint (no training state to resume: a weights "
            "file goes to vqgan.ckpt_path, or to eval.py's ckpt_path)")
    skip = NOT_SAVED.get(type(model).__name__, ())
    expected = {k: v for k, v in model.state_dict().items() if not (skip and k.startswith(skip))}
    unexpected = sorted(k for k in state if k not in expected and not (skip and k.startswith(skip)))
    missing = sorted(k for k in expected if k not in state)
    name = type(model).__name__
    if unexpected or missing:
        raise CheckpointError(
            f"ckpt_path={path} is a checkpoint of another model, not this {name} ({len(unexpected)} "
            f"unexpected keys: {_examples(unexpected) or '-'}; {len(missing)} missing: "
            f"{_examples(missing) or '-'}): resume with the experiment= it was trained with")
    wrong = [k for k in expected if tuple(state[k].shape) != tuple(expected[k].shape)]
    if wrong:
        k = wrong[0]
        raise CheckpointError(
            f"ckpt_path={path} does not fit the configured {name}: {len(wrong)} shape mismatches "
            f"(e.g. {k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}); resume "
            "with the model= and vqgan= it was trained with")
