"""Every user-facing setting's type and range, in one table; `check_settings` gives one-line errors.

`SETTINGS` maps a dotted config key to what it takes. Only the keys a config has are checked, so the
one table serves train.py, eval.py and quickstart.py (and every config group option). Values only:
what a `_target_` builds, lists and cross-setting rules are checked where they are used.
"""

from __future__ import annotations

from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from maskgit.config.setting import Setting, choice, flag, integer, names_in, number, path
from maskgit.decoding import settings as decode_settings
from maskgit.errors import ConfigError, exit_on_user_error

_ABSENT = object()


def _precisions() -> tuple[Any, ...]:
    """Lightning's own list of `precision` values (its type hints), with its int shorthands; Lightning
    2.x's list should a later version keep them elsewhere."""
    from typing import get_args

    from lightning.fabric import connector

    names = ("_PRECISION_INPUT_STR", "_PRECISION_INPUT_STR_ALIAS", "_PRECISION_INPUT_INT")
    found = tuple(v for n in names if hasattr(connector, n) for v in get_args(getattr(connector, n)))
    return found or ("transformer-engine", "transformer-engine-float16", "16-true", "16-mixed", "bf16-true",
                     "bf16-mixed", "32-true", "64-true", "64", "32", "16", "bf16", 64, 32, 16)


def _accelerators() -> tuple[str, ...]:
    from lightning.pytorch.accelerators import AcceleratorRegistry

    return ("auto", "gpu", *sorted(AcceleratorRegistry.available_accelerators()))


POSITIVE = integer(1)
COUNT = integer(0)
BATCHES = "images per device and step"
SCHEDULES = names_in("maskgit.decoding.iterative", "MASK_SCHEDULES", sort=True)

SETTINGS: dict[str, Setting] = {
    # --- train.py and eval.py
    "seed": integer(0, 2**32 - 1),
    "ckpt_path": path(),
    "trainer.accelerator": choice(_accelerators),
    "trainer.devices": Setting("devices"),
    "trainer.precision": choice(_precisions),
    "trainer.max_epochs": integer(-1, what="-1: no limit", null=True),
    "trainer.min_epochs": integer(0, null=True),
    "trainer.max_steps": integer(-1, what="-1: no limit"),
    "trainer.accumulate_grad_batches": POSITIVE,
    "trainer.gradient_clip_val": number(0, what="null: no clipping", null=True),
    "trainer.check_val_every_n_epoch": integer(1, null=True),
    "trainer.val_check_interval": Setting("interval", null=True),
    "trainer.log_every_n_steps": POSITIVE,
    "trainer.deterministic": flag(also=("warn",)),
    "trainer.enable_progress_bar": flag(),
    "trainer.fast_dev_run": integer(0, what="batches of train and val, then stop", also=(True, False)),
    "trainer.sync_batchnorm": flag(),
    "data.root": path("the data set folder", null=False),
    "data.cache_dir": path(null=False),
    "data.batch_size": integer(1, what=BATCHES),
    "data.num_workers": COUNT,
    "data.encode_batch_size": POSITIVE,
    "data.limit.train": integer(1, what="the first n files; null: all", null=True),
    "data.limit.val": integer(1, what="the first n files; null: all", null=True),
    "data.limit.test": integer(1, what="the first n files; null: all", null=True),
    "data.check_images": flag(),
    "data.pin_memory": flag(),
    "data.serve": choice(names_in("maskgit.data.datamodule", "SERVE")),
    "data.flip": flag(),
    "data.layout": choice(names_in("maskgit.data.labelled_layout", "LAYOUTS")),
    "data.val_fraction": number(0, 1, "the share of each class held out as val", max_inclusive=False),
    "data.image_size": POSITIVE,
    "data.synthetic.n_train": POSITIVE,
    "data.synthetic.n_val": POSITIVE,
    "data.synthetic.n_test": POSITIVE,
    "data.synthetic.seed": COUNT,
    "vqgan.ckpt_path": path("the VQGAN weights; null: random init"),
    "vqgan.image_channels": POSITIVE,
    "vqgan.latent_dim": POSITIVE,
    "vqgan.img_resolution": POSITIVE,
    "vqgan.latent_resolution": POSITIVE,
    "vqgan.num_codebook_vectors": POSITIVE,
    "vqgan.beta": number(0, what="commitment loss weight"),
    "vqgan.norm_groups": POSITIVE,
    # model=lab|small|tiny (the stage-2 transformer)
    "model.transformer.num_image_tokens": POSITIVE,
    "model.transformer.num_codebook_vectors": POSITIVE,
    "model.transformer.dim": POSITIVE,
    "model.transformer.n_layers": POSITIVE,
    "model.transformer.hidden_dim": POSITIVE,
    "model.transformer.num_heads": POSITIVE,
    "model.transformer.dropout": number(0, 1, max_inclusive=False),
    "model.transformer.fused_attention": flag(),
    "model.transformer.num_classes": integer(0, what="null: the data's classes; 0: unconditional", null=True),
    "model.mvtm.masking": choice(("schedule", "bernoulli")),
    "model.mvtm.mask_func": choice(SCHEDULES),
    "model.mvtm.r_min": number(0, 1, "the lowest mask ratio r drawn"),
    "model.mvtm.r_max": number(0, 1, "the highest mask ratio r drawn"),
    "model.mvtm.regions.prob": number(0, 1, "the probability a sample's masking is confined to a hole"),
    "model.mvtm.regions.shape": choice(names_in("maskgit.data.masks", "MASK_GENERATORS")),
    "model.mvtm.bernoulli_p": number(0, 1, "the masking probability", min_inclusive=False),
    "model.mvtm.label_smoothing": number(0, 1, max_inclusive=False),
    "model.mvtm.cond_drop": number(0, 1, "the probability a label is dropped", max_inclusive=False),
    "model.optimizer.lr": number(0, what="learning rate", min_inclusive=False),
    "model.optimizer.weight_decay": number(0),
    "model.scheduler.warmup_steps": integer(0, what="optimiser steps of linear warmup"),
    "model.scheduler.min_lr_ratio": number(0, 1, "final learning rate / lr"),
    "model.compile": flag(),
    # model=stage1 (experiment=vqgan: the VQGAN's own training)
    "model.loss.rec_loss": choice(("l1", "l2")),
    "model.loss.codebook_weight": number(0),
    "model.loss.perceptual_weight": number(0, what="0: no LPIPS"),
    "model.loss.perceptual_weights": path("the VGG16 file; null: torchvision's cache"),
    "model.loss.disc.enabled": flag(),
    "model.loss.disc.start": integer(0, what="the step the GAN loss begins"),
    "model.loss.disc.weight": number(0),
    "model.loss.disc.loss": choice(("hinge", "vanilla")),
    "model.loss.disc.n_layers": POSITIVE,
    "model.loss.disc.channels": POSITIVE,
    "model.disc_lr": number(0, what="null: model.optimizer.lr", null=True, min_inclusive=False),
    "model.grad_clip": number(0, what="gradient norm; null: no clipping", null=True, min_inclusive=False),
    "model.restart_dead_codes": integer(0, what="every n steps; 0: never"),
    "model.pictures.num_images": COUNT,
    "callbacks.model_checkpoint.save_top_k": integer(-1, what="-1: every checkpoint"),
    "callbacks.model_checkpoint.mode": choice(("min", "max")),
    "callbacks.model_summary.max_depth": integer(-1, what="-1: every layer"),
    # --- eval.py
    "vqgan_ckpt_path": path("a VQGAN file instead of the one the checkpoint names"),
    "task": choice(names_in("maskgit.tasks.eval", "TASKS")),
    **decode_settings.setting_table(),  # mask_func, total_iter, sweet_spot, ...: their fields
    "fused_attention": flag(),
    "composite": flag(),
    "pictures.num_images": COUNT,
    "pictures.grid_images": integer(0, what="0: no grid"),
    "inpaint.use_labels": flag(),
    "masks.source": choice(names_in("maskgit.data.mask_sources", "MASK_SOURCES")),
    "masks.seed": COUNT,
    "generate.num_samples": POSITIVE,
    "generate.fid_reference_limit": integer(1, what="the first n val images; null: all", null=True),
    "generate.grid_images": integer(0, what="0: no grid"),
    "baselines.picture_images": POSITIVE,
    "metrics.fid.enabled": flag(),
    "metrics.fid.weights_path": path("InceptionV3 weights; null: the packaged ones"),
    "metrics.fid.features": choice(names_in("maskgit.metrics.fid", "FEATURE_SIZES")),
    "metrics.fid.resize": choice(names_in("maskgit.metrics.fid", "RESIZES")),
    "metrics.fid.bootstrap": integer(0, what="replicates for the 95% interval; 0: none"),
    "metrics.fid.kid_subsets": POSITIVE,
    "metrics.fid.unseen_subset": flag(),
    "metrics.classifier.enabled": flag(),
    "metrics.classifier.epochs": POSITIVE,
    "metrics.classifier.batch_size": POSITIVE,
    "metrics.classifier.lr": number(0, what="learning rate", min_inclusive=False),
    # --- quickstart.py
    "processes": POSITIVE,
    "fid": flag("eval.py's metrics.fid.enabled"),
    "reduced": flag(),
    "batch_size.vqgan": integer(1, what="images per optimiser step", null=True),
    "batch_size.transformer": integer(1, what="images per optimiser step", null=True),
}


def check_settings(cfg: DictConfig) -> None:
    """Check each setting of SETTINGS that `cfg` has (absent or `???` ones are skipped); the first
    that does not fit raises ConfigError, one line naming the key, what it takes and the value."""
    for key, setting in SETTINGS.items():
        try:
            value = OmegaConf.select(cfg, key, default=_ABSENT)
        except OmegaConfBaseException:  # an interpolation that cannot resolve: its reader says so
            continue
        if value is _ABSENT:
            continue
        if (problem := setting.problem(key, value)) is not None:
            raise ConfigError(problem)
    if "sweet_spot" in cfg:  # eval.py's decoding: the rules between its fields (sweet_spot <= total_iter)
        decode_settings.DecodeSettings.from_config(cfg)


def register_decoding_configs() -> None:
    """What Hydra needs of the decoding settings before it composes eval.py's config: `decoding_base`,
    every DecodeSettings field's default at the top level (the base of conf/decoding/'s presets), and
    `${decoding_help:}` (their lines in `eval.py --help`, with the composed values). The node holds
    plain values, not the typed dataclass: typed nodes would answer `total_iter=abc` with Hydra's
    multi-line merge error before this table's one line."""
    ConfigStore.instance().store(name="decoding_base", node=decode_settings.defaults(), package="_global_")
    if not OmegaConf.has_resolver("decoding_help"):
        OmegaConf.register_new_resolver(
            "decoding_help",
            lambda *, _root_: "\n  ".join(decode_settings.help_lines(_root_, width=98)).replace("$", "$$"))


register_decoding_configs()  # on import, as Hydra apps register their structured configs


class CheckSettingsFirst(Callback):
    """`hydra.callbacks` (conf/hydra/default.yaml): a single run's settings are checked before Hydra
    makes its run folder, so a refused run writes nothing. Jobs of a multirun are checked as they
    start (the tasks call `check_settings` too)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        exit_on_user_error(check_settings)(config)
