"""LightningModule: a frozen VQGAN (stage 1) and a bidirectional transformer trained with MVTM.

Training reads cached tokens, so the VQGAN is only used for decoding pictures and inpainting.
With labelled data (`data=image_folder`) the transformer is class-conditional: batches are
(tokens, labels), and in training each label is replaced by "no class" with probability
`mvtm.cond_drop`, so one model also predicts without a class, which classifier-free guidance needs.
The checkpoint records the class names, so eval.py can select classes by name.

Checkpoints do not carry the VQGAN's weights: they record its config, path and digest, and loading
one checks that the VQGAN at hand is the one the transformer was trained on.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics.classification import MulticlassAccuracy

from maskgit.data.masks import check_mask_params, generate_masks
from maskgit.decoding.iterative import get_schedule, pixel_to_token_mask
from maskgit.errors import CheckpointError, ConfigError
from maskgit.models.checkpoint import build_vqgan, load_strict, read_weights_file
from maskgit.models.lab_transformer import convert_lab_state_dict, lab_state_dict
from maskgit.models.transformer import BidirectionalTransformer
from maskgit.training.optim import Spec, as_partial, node_config, param_groups
from maskgit.utils.identity import module_digest

VQGAN_RECORD = "maskgit_vqgan"
# How checkpoints written before the optimiser and the schedule were Hydra nodes are read: their
# hyper-parameters hold {lr, weight_decay, betas} and {warmup_steps, min_lr_ratio} without `_target_`,
# and those values, where a record lacks them, were the code's defaults then. Never used for a new model.
LEGACY_OPTIMIZER = {"_target_": "torch.optim.AdamW", "lr": 1e-4, "weight_decay": 0.01, "betas": (0.9, 0.96)}
LEGACY_SCHEDULER = {"_target_": "maskgit.training.optim.warmup_cosine", "warmup_steps": 1000,
                    "min_lr_ratio": 0.0}


def mvtm_mask(batch: int, length: int, *, masking: str, mask_func: str, bernoulli_p: float,
              generator: torch.Generator | None, device: torch.device, r_min: float = 0.0,
              r_max: float = 1.0, regions: dict[str, Any] | None = None) -> Tensor:
    """Which tokens to mask (B, L) bool.

    `schedule`: per sample r ~ U(r_min, r_max) and exactly ceil(gamma(r) * N) of its N candidate
    tokens masked (MaskGIT paper: r ~ U(0, 1); mask_func=linear with r_max=0.75 masks a fraction
    ~ U(0.25, 1), the best public lab result). The candidates are every token, or, with probability
    `regions["prob"]`, the tokens of one generated hole (`regions["shape"]`, `regions["params"]`:
    a pixel mask of `maskgit.data.masks` at 4 pixels per token): the state of an inpainting decode of
    a contiguous hole at ratio r, which is what the test set asks for.
    `bernoulli`: each token masked independently with probability p (what several public lab
    submissions do; the lab's template leaves the training mask to the student).
    """
    if masking == "bernoulli":
        return torch.rand(batch, length, generator=generator, device=device) < bernoulli_p
    if masking != "schedule":
        raise ConfigError(f"unknown model.mvtm.masking '{masking}'; valid: bernoulli, schedule")
    r = r_min + (r_max - r_min) * torch.rand(batch, generator=generator, device=device)
    candidates = torch.ones(batch, length, dtype=torch.bool, device=device)
    prob = float((regions or {}).get("prob", 0.0))
    if prob > 0:
        in_hole = torch.rand(batch, generator=generator, device=device) < prob
        seed = int(torch.randint(2**62, (1,), generator=generator, device=device))
        side = math.isqrt(length)
        known = generate_masks(regions["shape"], int(in_hole.sum()), seed=seed, size=4 * side,
                               **(regions.get("params") or {}))
        candidates[in_hole] = pixel_to_token_mask(known).to(device)
    n = torch.ceil(get_schedule(mask_func)(r) * candidates.sum(1)).clamp_min(1)
    score = torch.rand(batch, length, generator=generator, device=device).masked_fill(~candidates, 2.0)
    ranks = score.argsort(1).argsort(1)
    return ranks < n[:, None]


class MaskGIT(L.LightningModule):
    def __init__(self, vqgan: dict[str, Any], transformer: dict[str, Any],
                 mvtm: dict[str, Any] | None = None, optimizer: Spec | None = None,
                 scheduler: Spec | None = None, compile: bool = False,
                 vqgan_setting: str = "vqgan.ckpt_path", classes: list[dict[str, str]] | None = None):
        """`optimizer`: a partial taking parameter groups (the `model.optimizer` node, `_partial_: true`);
        `scheduler`: a partial taking (optimizer, total_steps) (the `model.scheduler` node). Either may
        also be its config (a checkpoint's record). Their values live in conf/model/*.yaml only; None
        (the default) is a model for inference: decoding, or a checkpoint loaded by eval.py.
        `vqgan_setting`: the option that names the VQGAN file here, for error messages (train.py:
        vqgan.ckpt_path; eval.py, which loads a checkpoint: vqgan_ckpt_path). Not a hyperparameter."""
        super().__init__()
        # A config (a checkpoint's record) is only built when training starts: loading a checkpoint
        # to evaluate it never imports what its optimiser or schedule name.
        self._optimizer_node = optimizer if callable(optimizer) else node_config(
            optimizer, "model.optimizer", LEGACY_OPTIMIZER)
        self._scheduler_node = scheduler if callable(scheduler) else node_config(
            scheduler, "model.scheduler", LEGACY_SCHEDULER)
        # Partials do not serialise: the checkpoint records their configs (plain values).
        self.save_hyperparameters({"vqgan": vqgan, "transformer": transformer, "mvtm": mvtm,
                                   "optimizer": node_config(self._optimizer_node, "model.optimizer"),
                                   "scheduler": node_config(self._scheduler_node, "model.scheduler"),
                                   "compile": compile, "classes": classes})
        self.vqgan_setting = vqgan_setting
        # defaults for checkpoints written before a key existed (a new model's values come from YAML)
        self.mvtm = {"masking": "schedule", "mask_func": "cosine", "bernoulli_p": 0.5,
                     "label_smoothing": 0.0, "cond_drop": 0.1, "r_min": 0.0, "r_max": 1.0,
                     "regions": {"prob": 0.0}, **(mvtm or {})}
        get_schedule(self.mvtm["mask_func"])  # fail at construction on a bad name
        if not 0 <= self.mvtm["r_min"] < self.mvtm["r_max"] <= 1:
            raise ConfigError(f"model.mvtm.r_min={self.mvtm['r_min']} and r_max={self.mvtm['r_max']} "
                              "must satisfy 0 <= r_min < r_max <= 1")
        if self.mvtm["regions"].get("prob", 0) > 0:
            check_mask_params(self.mvtm["regions"]["shape"], self.mvtm["regions"].get("params"))
        self.vqgan = build_vqgan(vqgan, vqgan_setting)
        if transformer.get("num_codebook_vectors") != self.vqgan.num_codebook_vectors:
            raise ConfigError("model.transformer.num_codebook_vectors must equal the VQGAN's "
                              f"({self.vqgan.num_codebook_vectors})")
        self.transformer = BidirectionalTransformer(**transformer)
        self.classes = list(classes or [])
        if len(self.classes) != self.transformer.num_classes:
            raise ConfigError(f"model.transformer.num_classes={self.transformer.num_classes} but "
                              f"{len(self.classes)} class names were given")
        self.num_codes = self.transformer.num_codebook_vectors
        self.mask_token_id = self.transformer.mask_token_id
        # one image's tokens: Lightning's model summary measures the FLOPs of a forward pass with it
        self.example_input_array = torch.zeros(1, self.transformer.num_image_tokens, dtype=torch.long)
        self.val_accuracy = MulticlassAccuracy(num_classes=self.num_codes, average="micro")
        self._compile = compile

    def configure_model(self) -> None:
        if self._compile and not isinstance(self.transformer, torch._dynamo.OptimizedModule):
            self.transformer = torch.compile(self.transformer)

    def train(self, mode: bool = True) -> MaskGIT:
        super().train(mode)
        self.vqgan.eval()  # frozen stage 1 stays in eval mode whatever Lightning asks
        return self

    def forward(self, tokens: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.transformer(tokens, labels)

    @property
    def conditional(self) -> bool:
        return self.transformer.num_classes > 0

    def _labels(self, batch: list[Tensor], drop: float, generator: torch.Generator | None) -> Tensor | None:
        """The batch's labels for the transformer, each dropped to "no class" with probability `drop`;
        None for an unconditional model (which ignores labels a labelled data set serves)."""
        if not self.conditional:
            return None
        if len(batch) < 2:
            raise ConfigError("this transformer is class-conditional but the data serves no labels "
                              "(use data=image_folder)")
        labels = batch[1].long()
        if drop > 0:
            dropped = torch.rand(labels.shape, generator=generator, device=labels.device) < drop
            labels = labels.masked_fill(dropped, self.transformer.null_class)
        return labels

    # -- masked visual token modeling -----------------------------------------------------------
    def _mvtm_loss(self, tokens: Tensor, generator: torch.Generator | None,
                   labels: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        m = self.mvtm
        masked = mvtm_mask(*tokens.shape, masking=m["masking"], mask_func=m["mask_func"],
                           bernoulli_p=m["bernoulli_p"], generator=generator, device=tokens.device,
                           r_min=m["r_min"], r_max=m["r_max"], regions=m["regions"])
        inputs = tokens.masked_fill(masked, self.mask_token_id)
        logits = self.transformer(inputs, labels)[..., : self.num_codes]  # the mask id is never a target
        loss = F.cross_entropy(logits[masked], tokens[masked],
                               label_smoothing=self.mvtm["label_smoothing"])
        return loss, logits, masked

    def training_step(self, batch: list[Tensor], batch_idx: int) -> Tensor:
        tokens = batch[0]
        labels = self._labels(batch, self.mvtm["cond_drop"], generator=None)
        loss, _, _ = self._mvtm_loss(tokens, None, labels)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(tokens))
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], batch_size=len(tokens))
        return loss

    def validation_step(self, batch: list[Tensor], batch_idx: int) -> None:
        tokens = batch[0]
        # The same masks every epoch, so val/loss curves compare like with like; labels are kept.
        generator = torch.Generator(tokens.device).manual_seed(1_000_003 * batch_idx + 17)
        loss, logits, masked = self._mvtm_loss(tokens, generator, self._labels(batch, 0.0, None))
        self.val_accuracy.update(logits[masked].argmax(-1), tokens[masked])
        self.log("val/loss", loss, prog_bar=True, sync_dist=True, batch_size=len(tokens))
        self.log("val/masked_token_accuracy", self.val_accuracy, batch_size=len(tokens))

    # -- optimisation ---------------------------------------------------------------------------
    def build_optimizer(self, module: torch.nn.Module | None = None) -> torch.optim.Optimizer:
        """The configured optimiser on `module`'s (default: the transformer's) parameter groups:
        weight decay on Linear weights only."""
        if self._optimizer_node is None:
            raise ConfigError("this MaskGIT was built without model.optimizer: it cannot be trained")
        return as_partial(self._optimizer_node)(param_groups(self.transformer if module is None else module))

    def build_scheduler(self, optimizer: torch.optim.Optimizer, total_steps: float) -> Any:
        """The configured per-step schedule over `total_steps` optimiser steps (inf: an endless run)."""
        if self._scheduler_node is None:
            raise ConfigError("this MaskGIT was built without model.scheduler: it cannot be trained")
        return as_partial(self._scheduler_node)(optimizer, total_steps=total_steps)

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = self.build_optimizer()
        scheduler = self.build_scheduler(optimizer, self.trainer.estimated_stepping_batches)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}

    @classmethod
    def from_checkpoint(cls, path: str, vqgan_ckpt_path: str | None = None,
                        map_location: str | torch.device = "cpu",
                        lab_model: dict[str, Any] | None = None,
                        lab_attention_names: list[str] | None = None) -> MaskGIT:
        """A checkpoint written by train.py, with the VQGAN it names (or `vqgan_ckpt_path`).

        A file without train.py's record is read as a transformer trained with the lab's code: its
        architecture and VQGAN come from `lab_model` (the `model` config) and its attention layers
        are renamed to ours (`maskgit.models.lab_transformer`).
        """
        ckpt = read_weights_file(path, "ckpt_path")
        hparams = ckpt.get("hyper_parameters")
        if VQGAN_RECORD not in ckpt or not isinstance(hparams, dict) or "transformer" not in hparams:
            if lab_model is None:
                raise CheckpointError(f"{path} is not a maskgit train.py checkpoint (no VQGAN record or "
                                      "hyper-parameters)")
            return cls._from_lab_file(ckpt, path, vqgan_ckpt_path, lab_model,
                                      lab_attention_names).to(map_location).eval()
        vqgan_cfg = dict(hparams["vqgan"])
        if vqgan_ckpt_path:
            vqgan_cfg["ckpt_path"] = vqgan_ckpt_path
        model = cls(**{**hparams, "vqgan": vqgan_cfg, "compile": False, "vqgan_setting": "vqgan_ckpt_path"})
        model.on_load_checkpoint(ckpt)  # checks the VQGAN digest
        state = {k[len("transformer."):]: v for k, v in ckpt["state_dict"].items()
                 if k.startswith("transformer.")}
        state = {k.replace("_orig_mod.", ""): v for k, v in state.items()}
        load_strict(model.transformer, state, f"checkpoint {path}")
        return model.to(map_location).eval()

    @classmethod
    def _from_lab_file(cls, content: dict[str, Any], path: str, vqgan_ckpt_path: str | None,
                       model_cfg: dict[str, Any], attention_names: list[str] | None) -> MaskGIT:
        if "tok_emb.weight" not in lab_state_dict(content):
            raise CheckpointError(f"{path} is not a maskgit train.py checkpoint nor a lab transformer "
                                  "state dict (no tok_emb.weight)")
        kwargs = {k: v for k, v in model_cfg.items() if not k.startswith("_")}
        vqgan_cfg = dict(kwargs["vqgan"])
        if vqgan_ckpt_path:
            vqgan_cfg["ckpt_path"] = vqgan_ckpt_path
        model = cls(**{**kwargs, "vqgan": vqgan_cfg, "compile": False})
        state = convert_lab_state_dict(content, len(model.transformer.blocks), attention_names,
                                       source=f"lab transformer {path}")
        load_strict(model.transformer, state, f"lab transformer {path} (model.transformer settings)")
        return model

    # -- checkpoints record the VQGAN instead of carrying it -------------------------------------
    def vqgan_record(self) -> dict[str, Any]:
        return {"config": dict(self.vqgan.config), "ckpt_path": str(self.hparams.vqgan.get("ckpt_path")),
                "sha256": module_digest(self.vqgan)}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith("vqgan.")]:
            del state[key]
        checkpoint[VQGAN_RECORD] = self.vqgan_record()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        record = checkpoint.get(VQGAN_RECORD)
        if record is None:
            raise CheckpointError("checkpoint was not written by maskgit's train.py (no VQGAN record)")
        ours = module_digest(self.vqgan)
        if record["sha256"] != ours:
            raise CheckpointError(
                f"VQGAN mismatch: the checkpoint was trained on VQGAN {record['ckpt_path']} "
                f"(sha256 {record['sha256'][:12]}) but {self.vqgan_setting} gives sha256 {ours[:12]}")
        checkpoint["state_dict"].update({f"vqgan.{k}": v for k, v in self.vqgan.state_dict().items()})
