"""`train.py ckpt_path=...`: check the checkpoint to resume from before anything is built or trained.

Lightning would find out too, but only after the data is encoded, and as a traceback. Here a missing,
truncated or random file, a weights-only file, another stage's checkpoint or another model size is
one line naming the file (exit 2 through `exit_on_user_error`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import lightning as L

from maskgit.errors import CheckpointError
from maskgit.models.checkpoint import compare_state, names, read_weights_file, shape_problem
from maskgit.utils.atomic import remove_stale_partials

# Parts of a model's state that its checkpoints leave out on purpose (MaskGIT: the frozen VQGAN).
NOT_SAVED = {"MaskGIT": "vqgan."}


def check_resume_checkpoint(path: str, model: L.LightningModule) -> None:
    """Refuse `path` in one line unless it is a train.py checkpoint of exactly this model. Partial
    files that the killed run left beside it are removed (see `maskgit.utils.atomic`)."""
    ckpt = read_weights_file(path, "ckpt_path")  # missing, truncated, damaged, random, hostile: one line
    remove_stale_partials(Path(path).parent)
    state = ckpt.get("state_dict")
    if not isinstance(state, Mapping) or "global_step" not in ckpt or "optimizer_states" not in ckpt:
        raise CheckpointError(
            f"ckpt_path={path} is not a train.py checkpoint (no training state to resume: a weights "
            "file goes to vqgan.ckpt_path, or to eval.py's ckpt_path)")
    name = type(model).__name__
    skip = NOT_SAVED.get(name)
    if skip:
        state = {k: v for k, v in state.items() if not k.startswith(skip)}
    expected = {k: v for k, v in model.state_dict().items() if not (skip and k.startswith(skip))}
    missing, unexpected, wrong = compare_state(expected, state)
    if unexpected or missing:
        raise CheckpointError(
            f"ckpt_path={path} is a checkpoint of another model, not this {name} ({len(unexpected)} "
            f"unexpected keys: {names(unexpected, 2) or '-'}; {len(missing)} missing: "
            f"{names(missing, 2) or '-'}): resume with the experiment= it was trained with")
    if wrong:
        raise CheckpointError(
            f"ckpt_path={path} does not fit the configured {name}: "
            f"{shape_problem(wrong, expected, state)}; resume with the model= and vqgan= it was "
            "trained with")
