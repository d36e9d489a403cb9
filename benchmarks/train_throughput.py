"""Training throughput of the transformer: cached tokens vs encoding every batch (the lab's way).

Both modes run the project's real MVTM step (`MaskGIT._mvtm_loss`, backward, AdamW with its
decay groups, warmup+cosine schedule) from the same initial weights on the same batches of real
images, with the same masks and dropout; only where the tokens come from differs:

  cache   tokens encoded once by `TokenCache` (timed separately: a one-off cost per data set)
  encode  every step first runs the frozen VQGAN's encoder on the image batch under no_grad
  fused   (--fused) cache, with the fused attention kernel (scaled_dot_product_attention)

The VQGAN has random weights (the lab's checkpoint is not needed to time it). Warm-up steps are
excluded from the figures.

    python benchmarks/train_throughput.py --data-root /path/to/cat_face --batch-size 32 --steps 10
    OMP_NUM_THREADS=1 python benchmarks/train_throughput.py --vqgan quickstart --fused --dropout 0
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from maskgit.config.compose import model_configs
from maskgit.data.images import LAB_TRAIN
from maskgit.data.layout import scan_layout
from maskgit.data.token_cache import TokenCache, load_images
from maskgit.errors import ConfigError, exit_on_user_error
from maskgit.models.vqgan import VQGAN
from maskgit.modules.maskgit import MaskGIT
from maskgit.utils.atomic import save_json
from maskgit.utils.perf import LAB_EPOCH_IMAGES, count_flops, peak_memory, resolve_device, synchronize, tflops


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-root", default=os.environ.get("MASKGIT_DATA_ROOT"),
                   help="cat_face data set (default: $MASKGIT_DATA_ROOT)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=10, help="timed steps per mode")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps per mode")
    p.add_argument("--vqgan", default="lab", help="conf/vqgan/<name>.yaml (random weights)")
    p.add_argument("--transformer", default="small", help="conf/model/<name>.yaml")
    p.add_argument("--fused", action="store_true",
                   help="also time token-cache steps with the fused attention kernel")
    p.add_argument("--dropout", type=float, default=None, help="transformer dropout (default: the config's)")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, ...")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    return p.parse_args(argv)


def train_steps(model: MaskGIT, initial: dict[str, Tensor], batches: list[Tensor],
                tokens_of: Callable[[Tensor], Tensor], warmup: int, seed: int,
                device: torch.device) -> dict:
    """Run one MVTM training step per batch from `initial` weights; time the steps after `warmup`."""
    model.transformer.load_state_dict(initial)
    model.train()  # the VQGAN stays in eval mode (MaskGIT.train)
    optimizer = model.build_optimizer()  # model.optimizer / model.scheduler of the config
    scheduler = model.build_scheduler(optimizer, total_steps=10_000)
    torch.manual_seed(seed)  # dropout
    masks = torch.Generator(device).manual_seed(seed)
    times, encode_times, losses = [], [], []
    for batch in batches:
        synchronize(device)
        start = time.perf_counter()
        tokens = tokens_of(batch)
        synchronize(device)
        encoded = time.perf_counter()
        loss, _, _ = model._mvtm_loss(tokens, masks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        synchronize(device)
        times.append(time.perf_counter() - start)
        encode_times.append(encoded - start)
        losses.append(loss.item())
    timed, n = times[warmup:], len(times) - warmup
    seconds = sum(timed)
    return {"steps": n, "seconds": seconds, "ms_per_step": 1e3 * seconds / n,
            "images_per_s": n * len(batches[0]) / seconds,
            "ms_tokens_per_step": 1e3 * sum(encode_times[warmup:]) / n, "losses": losses}


@exit_on_user_error
def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if not args.data_root:
        raise ConfigError("no data set: pass --data-root or set MASKGIT_DATA_ROOT")
    if args.batch_size < 1 or args.steps < 1 or args.warmup < 0:
        raise ConfigError("--batch-size and --steps must be >= 1, --warmup >= 0")
    device = resolve_device(args.device)
    n_batches = args.warmup + args.steps
    n_images = n_batches * args.batch_size
    layout = scan_layout(args.data_root, splits=("train",), limit={"train": n_images})
    files = layout.train_files
    if len(files) < n_images:
        raise ConfigError(f"{layout.root}/train holds {len(files)} images; "
                          f"{n_batches} batches of {args.batch_size} need {n_images}")
    vqgan_cfg, model_cfg = model_configs(args.vqgan, args.transformer)
    model_cfg["transformer"]["fused_attention"] = False  # the hand-written attention is the baseline
    if args.dropout is not None:
        model_cfg["transformer"]["dropout"] = args.dropout
    images = load_images(files, LAB_TRAIN).to(device)
    batches = list(images.split(args.batch_size))

    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(args.seed)
        arch = {k: v for k, v in vqgan_cfg.items() if k != "ckpt_path"}
        ckpt = Path(tmp) / "VQGAN.pt"
        torch.save(VQGAN(**arch).state_dict(), ckpt)
        model = MaskGIT(vqgan={**arch, "ckpt_path": str(ckpt)}, transformer=model_cfg["transformer"],
                        mvtm=model_cfg["mvtm"], optimizer=model_cfg["optimizer"],
                        scheduler=model_cfg["scheduler"]).to(device)
        initial = {k: v.clone() for k, v in model.transformer.state_dict().items()}

        # One-off: what the data module does before training (hash, read, encode, save).
        synchronize(device)
        start = time.perf_counter()
        cached = TokenCache(Path(tmp) / "tokens").tokens("train", model.vqgan, files, LAB_TRAIN,
                                                         batch_size=args.batch_size, device=device)
        synchronize(device)
        one_off = time.perf_counter() - start
        token_batches = list(cached.to(device).split(args.batch_size))

        encoded: list[Tensor] = []

        def encode(x: Tensor) -> Tensor:
            with torch.no_grad():
                _, indices, _ = model.vqgan.encode(x)  # the lab's training step
            encoded.append(indices)
            return indices

        results = {
            "cache": train_steps(model, initial, token_batches, lambda t: t, args.warmup,
                                 args.seed, device),
            "encode": train_steps(model, initial, batches, encode, args.warmup,
                                  args.seed, device),
        }
        mismatched = sum(int((e != t).sum()) for e, t in zip(encoded, token_batches, strict=True))
        if args.fused:
            model.transformer.set_fused_attention(True)
            results["fused"] = train_steps(model, initial, token_batches, lambda t: t,
                                           args.warmup, args.seed, device)
        # FLOPs of one step (forward + backward; the optimiser's elementwise work is not counted)
        flops_step = count_flops(lambda: model._mvtm_loss(token_batches[0], None)[0].backward())
        memory = peak_memory(device)

    ratio = results["cache"]["images_per_s"] / results["encode"]["images_per_s"]
    n_params = sum(p.numel() for p in model.transformer.parameters())
    print(f"device {device} ({platform.processor() or platform.machine()}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; VQGAN {args.vqgan} (random weights), transformer "
          f"{args.transformer} ({n_params / 1e6:.2f} M params, dropout "
          f"{model_cfg['transformer']['dropout']}); batch {args.batch_size}, "
          f"{args.steps} timed steps after {args.warmup} warm-up")
    print(f"one-off token cache: {n_images} images in {one_off:.2f} s "
          f"({n_images / one_off:.1f} images/s, read + hash + encode + save)")
    print(f"{'mode':<20}{'images/s':>10}{'ms/step':>10}{'of which tokens':>17}")
    labels = {"cache": "token cache", "encode": "encode every step", "fused": "cache + fused attn"}
    for name, r in results.items():
        print(f"{labels[name]:<20}{r['images_per_s']:>10.1f}{r['ms_per_step']:>10.1f}"
              f"{r['ms_tokens_per_step']:>14.1f} ms")
    print(f"{'cache / encode':<20}{ratio:>9.1f}x")
    if args.fused:
        fused_ratio = results["fused"]["images_per_s"] / results["cache"]["images_per_s"]
        gap = max(abs(a - b) for a, b in zip(results["fused"]["losses"], results["cache"]["losses"],
                                             strict=True))
        print(f"{'fused / cache':<20}{fused_ratio:>9.2f}x   (largest loss difference {gap:.2e})")
    for r in results.values():
        r["epoch_s"] = LAB_EPOCH_IMAGES / r["images_per_s"]
        r["tflops"] = tflops(flops_step, r["ms_per_step"] / 1e3)
    print(f"{flops_step / args.batch_size / 1e9:.2f} GFLOP per image per step; a 12,000-image epoch: "
          + ", ".join(f"{labels[n]} {r['epoch_s'] / 60:.1f} min ({r['tflops']:.3f} TFLOP/s)"
                      for n, r in results.items())
          + f"; peak memory {memory['gib']:.2f} GiB ({memory['kind']})")
    same = results["cache"]["losses"] == results["encode"]["losses"]
    per_image = results["encode"]["ms_tokens_per_step"] / args.batch_size
    print(f"per image: {1e3 * one_off / n_images:.0f} ms once for the cache vs {per_image:.0f} ms of "
          f"encoding in every epoch the lab's way")
    print(f"same tokens in both modes: {mismatched == 0} ({mismatched} of {n_images * cached.shape[1]} "
          f"differ); identical losses: {same}")

    report = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
              "vqgan": args.vqgan, "transformer": args.transformer, "transformer_params": n_params,
              "batch_size": args.batch_size, "steps": args.steps, "warmup": args.warmup,
              "one_off_cache_s": one_off, "one_off_images": n_images, "cache": results["cache"],
              "encode": results["encode"], "cache_over_encode": ratio,
              "tokens_mismatched": mismatched, "identical_losses": same, "fused": results.get("fused"),
              "flops_per_image_step": flops_step / args.batch_size, "peak_memory": memory}
    if args.json:
        save_json(report, args.json)
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
