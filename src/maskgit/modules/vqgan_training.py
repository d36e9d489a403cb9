"""Stage 1: train the lab VQGAN on images, as taming-transformers does.

generator loss = rec + perceptual_weight * LPIPS + codebook_weight * codebook loss
                 + disc_weight * lambda * g_loss                          (once step >= disc.start)
lambda = ||grad_last rec|| / (||grad_last g_loss|| + 1e-4), clamped to [0, 1e4], where `last` is the
decoder's output conv weight and `rec` includes the perceptual term (taming's "nll").

Two Adam optimisers stepped by hand (Lightning manual optimisation): the VQGAN, then the PatchGAN
discriminator on detached reconstructions. Before `disc.start` the discriminator is neither run nor
stepped, so Lightning's global_step counts batches; afterwards it counts both optimisers' steps.
The checkpoint's state_dict holds vqgan.* and discriminator.*: `vqgan.ckpt_path=<it>` loads it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.utils import make_grid

from maskgit.data.images import LAB_TRAIN
from maskgit.errors import ConfigError
from maskgit.metrics.codebook import CodebookUsage
from maskgit.models.checkpoint import build_vqgan
from maskgit.models.discriminator import NLayerDiscriminator
from maskgit.models.perceptual import PerceptualLoss
from maskgit.models.vqgan import VQGAN
from maskgit.training.optim import Spec, as_partial, node_config
from maskgit.utils.pictures import save_picture

DEFAULT_LOSS: dict[str, Any] = {
    "rec_loss": "l1", "codebook_weight": 1.0, "perceptual_weight": 0.0, "perceptual_weights": None,
    "disc": {"enabled": True, "start": 10_000, "weight": 0.8, "loss": "hinge", "n_layers": 3,
             "channels": 64},
}


def adaptive_weight(rec_loss: Tensor, g_loss: Tensor, last_layer: Tensor, max_weight: float = 1e4) -> Tensor:
    """taming's lambda: balance the GAN gradient against the reconstruction gradient at `last_layer`."""
    rec_grad = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    g_grad = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
    return (rec_grad.norm() / (g_grad.norm() + 1e-4)).clamp(0.0, max_weight).detach()


def discriminator_loss(kind: str, logits_real: Tensor, logits_fake: Tensor) -> Tensor:
    if kind == "hinge":
        return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())
    return 0.5 * (F.softplus(-logits_real).mean() + F.softplus(logits_fake).mean())  # vanilla


def generator_loss(logits_fake: Tensor) -> Tensor:
    return -logits_fake.mean()  # taming uses this for hinge and vanilla alike


class VQGANTraining(L.LightningModule):
    input_kind = "images"  # what the datamodule must serve (the stage-2 MaskGIT reads tokens)

    def __init__(self, vqgan: dict[str, Any], loss: dict[str, Any] | None = None, *, optimizer: Spec,
                 disc_lr: float | None, grad_clip: float | None, pictures: dict[str, Any] | None = None,
                 restart_dead_codes: int = 0):
        """`optimizer`: a partial taking parameters (the `model.optimizer` node, `_partial_: true`), or
        its config; built for the VQGAN, and with lr=`disc_lr` (None: the optimiser's own) for the
        discriminator. `grad_clip`: the largest gradient norm of each step (None: no clipping). These
        have no defaults here: conf/model/stage1.yaml sets them.
        `restart_dead_codes=n`: every n training steps, codes no batch used in those steps are
        moved onto encoder outputs of the current batch (0 = never; the lab never does)."""
        super().__init__()
        self._optimizer_node = optimizer if callable(optimizer) else node_config(optimizer, "model.optimizer")
        # Partials do not serialise: the checkpoint records the optimiser's config (plain values).
        self.save_hyperparameters({"vqgan": vqgan, "loss": loss,
                                   "optimizer": node_config(self._optimizer_node, "model.optimizer"),
                                   "disc_lr": disc_lr, "grad_clip": grad_clip, "pictures": pictures,
                                   "restart_dead_codes": restart_dead_codes})
        self.automatic_optimization = False
        loss = dict(loss or {})
        self.loss_cfg = {**DEFAULT_LOSS, **loss, "disc": {**DEFAULT_LOSS["disc"], **(loss.get("disc") or {})}}
        self.disc_lr, self.grad_clip = disc_lr, grad_clip
        self.num_pictures = int((pictures or {}).get("num_images", 8))
        disc = self.loss_cfg["disc"]
        if self.loss_cfg["rec_loss"] not in ("l1", "l2"):
            raise ConfigError(f"model.loss.rec_loss must be l1 or l2, found {self.loss_cfg['rec_loss']!r}")
        if disc["loss"] not in ("hinge", "vanilla"):
            raise ConfigError(f"model.loss.disc.loss must be hinge or vanilla, found {disc['loss']!r}")

        if vqgan.get("ckpt_path"):  # fine-tune from these weights
            self.vqgan = build_vqgan(vqgan).train().requires_grad_(True)
        else:
            self.vqgan = VQGAN(**{k: v for k, v in vqgan.items() if k != "ckpt_path"})
        self.discriminator = (NLayerDiscriminator(self.vqgan.config["image_channels"], disc["channels"],
                                                  disc["n_layers"]) if disc["enabled"] else None)
        self.perceptual = (PerceptualLoss(LAB_TRAIN, self.loss_cfg["perceptual_weights"])
                           if self.loss_cfg["perceptual_weight"] > 0 else None)
        self.codebook_usage = CodebookUsage(self.vqgan.num_codebook_vectors)
        self.restart_every = int(restart_dead_codes)
        self._train_counts = torch.zeros(self.vqgan.num_codebook_vectors, dtype=torch.long)
        self._val_pictures: list[tuple[Tensor, Tensor]] = []
        # one image: Lightning's model summary measures the FLOPs of a forward pass with it
        c, size = self.vqgan.config["image_channels"], self.vqgan.config["img_resolution"]
        self.example_input_array = torch.zeros(1, c, size, size)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return self.vqgan(x)

    def gan_active(self) -> bool:
        return self.discriminator is not None and self.global_step >= self.loss_cfg["disc"]["start"]

    def _rec_loss(self, xrec: Tensor, x: Tensor) -> Tensor:
        return F.l1_loss(xrec, x) if self.loss_cfg["rec_loss"] == "l1" else F.mse_loss(xrec, x)

    def _losses(self, x: Tensor, xrec: Tensor, q_loss: Tensor) -> dict[str, Tensor]:
        out = {"rec_loss": self._rec_loss(xrec, x), "codebook_loss": q_loss}
        out["nll"] = out["rec_loss"]
        if self.perceptual is not None:
            out["perceptual_loss"] = self.perceptual(xrec, x)
            out["nll"] = out["nll"] + self.loss_cfg["perceptual_weight"] * out["perceptual_loss"]
        out["loss"] = out["nll"] + self.loss_cfg["codebook_weight"] * q_loss
        return out

    # -- training -------------------------------------------------------------------------------
    def _step(self, optimizer, loss: Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        if self.grad_clip:
            self.clip_gradients(optimizer, gradient_clip_val=self.grad_clip,
                                gradient_clip_algorithm="norm")
        optimizer.step()

    def training_step(self, x: Tensor, batch_idx: int) -> None:
        optimizers = self.optimizers()
        opt_g, opt_d = optimizers if isinstance(optimizers, list) else (optimizers, None)
        disc = self.loss_cfg["disc"]
        gan = self.gan_active()

        if opt_d is not None:
            self.toggle_optimizer(opt_g)  # no discriminator gradients from the generator's loss
        xrec, indices, q_loss = self.vqgan(x)
        losses = self._losses(x, xrec, q_loss)
        loss = losses["loss"]
        if gan:
            losses["g_loss"] = generator_loss(self.discriminator(xrec))
            last_layer = self.vqgan.decoder.model[-1].weight
            losses["adaptive_weight"] = adaptive_weight(losses["nll"], losses["g_loss"], last_layer)
            loss = loss + disc["weight"] * losses["adaptive_weight"] * losses["g_loss"]
        losses["loss"] = loss
        self._step(opt_g, loss)
        if opt_d is not None:
            self.untoggle_optimizer(opt_g)

        if gan:
            self.toggle_optimizer(opt_d)
            logits_real, logits_fake = self.discriminator(x), self.discriminator(xrec.detach())
            losses["d_loss"] = discriminator_loss(disc["loss"], logits_real, logits_fake)
            self._step(opt_d, losses["d_loss"])
            self.untoggle_optimizer(opt_d)

        if self.restart_every:
            self._count_and_restart(x, indices, batch_idx)
        self.log("train/rec_loss", losses.pop("rec_loss").detach(), prog_bar=True, batch_size=len(x))
        losses.pop("nll")
        self.log_dict({f"train/{k}": v.detach() for k, v in losses.items()}, batch_size=len(x))

    @torch.no_grad()
    def _count_and_restart(self, x: Tensor, indices: Tensor, batch_idx: int) -> None:
        """Dead-code restart: unused codes jump to random encoder outputs (the same on every rank)."""
        counts = self._train_counts.to(indices.device)
        counts += torch.bincount(indices.flatten(), minlength=len(counts))
        self._train_counts = counts
        if (batch_idx + 1) % self.restart_every:
            return
        counts = self.trainer.strategy.reduce(counts.float(), reduce_op="sum")
        dead = (counts == 0).nonzero().flatten()
        latents = self.vqgan.latents(x).permute(0, 2, 3, 1).flatten(0, 2)  # (B*h*w, latent_dim)
        chosen = latents[torch.randperm(len(latents), device=latents.device)[: len(dead)]]
        chosen = self.trainer.strategy.broadcast(chosen.cpu(), src=0).to(latents.device)
        self.vqgan.codebook.embedding.weight[dead[: len(chosen)]] = chosen
        self.log("train/restarted_codes", float(len(dead)), batch_size=len(x))
        self._train_counts = torch.zeros_like(self._train_counts)

    # -- validation -----------------------------------------------------------------------------
    def validation_step(self, x: Tensor, batch_idx: int) -> None:
        xrec, indices, q_loss = self.vqgan(x)
        losses = self._losses(x, xrec, q_loss)
        n = len(x)
        self.log("val/rec_loss", losses["rec_loss"], prog_bar=True, sync_dist=True, batch_size=n)
        self.log("val/loss", losses["rec_loss"], sync_dist=True, batch_size=n)  # default monitor
        self.log("val/codebook_loss", q_loss, sync_dist=True, batch_size=n)
        if "perceptual_loss" in losses:
            self.log("val/perceptual_loss", losses["perceptual_loss"], sync_dist=True, batch_size=n)
        self.codebook_usage.update(indices)
        have = sum(len(a) for a, _ in self._val_pictures)
        if have < self.num_pictures:
            k = self.num_pictures - have
            self._val_pictures.append((x[:k].detach().cpu(), xrec[:k].detach().float().cpu()))

    def on_validation_epoch_end(self) -> None:
        stats = self.codebook_usage.compute()  # summed over the epoch and over DDP processes
        self.codebook_usage.reset()
        # Equal on every process already; sync_dist averages equal values (and keeps Lightning quiet).
        self.log_dict({"val/codebook_usage": stats["usage"], "val/codebook_perplexity": stats["perplexity"],
                       "val/dead_codes": stats["dead_codes"]}, sync_dist=True)
        pictures, self._val_pictures = self._val_pictures, []
        if pictures and not self.trainer.sanity_checking and self.trainer.is_global_zero:
            originals, reconstructions = (torch.cat(part) for part in zip(*pictures, strict=True))
            self._save_reconstructions(originals, reconstructions)

    def _save_reconstructions(self, originals: Tensor, reconstructions: Tensor) -> None:
        """Originals (top row) above their reconstructions, denormalised to uint8."""
        images = LAB_TRAIN.to_uint8(torch.cat([originals, reconstructions]))
        grid = make_grid(images, nrow=len(originals), padding=2, pad_value=255)
        save_picture(grid, Path(self.trainer.default_root_dir) / "pictures"
                     / f"recon_epoch_{self.current_epoch:03d}_step_{self.global_step:06d}.png")
        for logger in self.loggers:
            if hasattr(logger, "log_image"):
                logger.log_image(key="val/reconstructions", images=[grid.permute(1, 2, 0).numpy()],
                                 caption=[f"epoch {self.current_epoch}: originals / reconstructions"])

    # -- optimisation ---------------------------------------------------------------------------
    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        build = as_partial(self._optimizer_node)
        optimizers = [build(self.vqgan.parameters())]
        if self.discriminator is not None:
            extra = {} if self.disc_lr is None else {"lr": self.disc_lr}
            optimizers.append(build(self.discriminator.parameters(), **extra))
        return optimizers
