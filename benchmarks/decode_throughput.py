"""Inpainting throughput: our batched decoding vs the lab's one-image-at-a-time loop.

Both modes use the same lab-size transformer and VQGAN (random weights, eval mode), the same real
test images and masks, and T steps of the same schedule and selection rule:

  ours  `maskgit.decoding.iterative.decode` over a whole batch, then ONE VQGAN decode of the final tokens
  lab   one image at a time (`lab_style_inpaint_one`): each step calls the transformer on a batch
        of 1, samples, selects, and decodes the current tokens with the VQGAN (the lab writes a
        picture per step)

The masked images are encoded once up front, shared by both modes and not timed. One warm-up
batch / image per mode is excluded from the figures; every mode then times all the images, the
modes taking turns `--repeats` times so that a change in the load of a shared machine hits them all.

    python benchmarks/decode_throughput.py --data-root /path/to/cat_face --images 8
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from collections.abc import Callable

import torch
from torch import Tensor

from maskgit.data.images import LAB_TEST, read_image, read_mask
from maskgit.data.layout import scan_layout
from maskgit.decoding.iterative import DecodeSettings, decode, get_schedule, pixel_to_token_mask
from maskgit.errors import ConfigError, exit_on_user_error
from maskgit.models.transformer import BidirectionalTransformer
from maskgit.models.vqgan import VQGAN
from maskgit.utils.atomic import save_json
from maskgit.utils.perf import resolve_device, synchronize

SEED_STRIDE = 1_000_003  # image i of run seed s decodes with seed i + s * SEED_STRIDE (as eval does)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-root", default=os.environ.get("MASKGIT_DATA_ROOT"),
                   help="cat_face data set with masked_image/ and mask64/ (default: $MASKGIT_DATA_ROOT)")
    p.add_argument("--images", type=int, default=8, help="first N test images")
    p.add_argument("--batch-size", type=int, default=None, help="ours: images per batch (default: all)")
    p.add_argument("--total-iter", type=int, default=8, help="decoding steps T")
    p.add_argument("--mask-func", default="cosine", help="mask schedule")
    p.add_argument("--choice-temperature", type=float, default=4.5)
    p.add_argument("--repeats", type=int, default=1,
                   help="timed passes over the images per mode; modes take turns in each pass")
    p.add_argument("--fused", action="store_true",
                   help="also time ours with fused attention (scaled_dot_product_attention)")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, ...")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=str, default=None, help="also write the figures to this file")
    return p.parse_args(argv)


class Clock:
    """Accumulates the wall time of named phases, synchronising the device around each one."""

    def __init__(self, device: torch.device):
        self.device, self.seconds = device, {"transformer": 0.0, "vqgan": 0.0}

    def timed(self, phase: str, fn: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
        def call(x: Tensor) -> Tensor:
            synchronize(self.device)
            start = time.perf_counter()
            y = fn(x)
            synchronize(self.device)
            self.seconds[phase] += time.perf_counter() - start
            return y
        return call


def lab_style_inpaint_one(transformer: BidirectionalTransformer, vqgan: VQGAN, tokens: Tensor,
                          masked: Tensor, *, total_iter: int, mask_func: str,
                          choice_temperature: float, generator: torch.Generator,
                          clock: Clock) -> tuple[Tensor, list[Tensor]]:
    """The lab's inpainting of ONE image: tokens, masked (1, L) -> (final tokens (1, L), pictures).

    Every step runs the transformer on this image alone, samples each masked token from the
    softmax, scores it by its probability plus choice_temperature * (1 - r) * Gumbel noise, keeps
    the floor(N * gamma(r)) lowest-scored masked, and decodes that step's tokens to a picture.
    """
    gamma = get_schedule(mask_func)
    num_codes, mask_id = transformer.num_codebook_vectors, transformer.mask_token_id
    forward = clock.timed("transformer", transformer)
    to_image = clock.timed("vqgan", lambda t: LAB_TEST.to_uint8(vqgan.decode_tokens(t)))
    unknown = masked.clone()
    n_masked = int(masked.sum())
    indices = torch.where(unknown, mask_id, tokens)
    pictures = []
    for t in range(total_iter):
        r = (t + 1) / total_iter
        probs = torch.softmax(forward(indices)[..., :num_codes].float(), dim=-1)
        sampled = torch.multinomial(probs[0], 1, generator=generator).view(1, -1)
        sampled = torch.where(unknown, sampled, indices)
        confidence = probs.gather(-1, sampled.unsqueeze(-1)).squeeze(-1)
        u = torch.rand(confidence.shape, generator=generator, device=confidence.device)
        gumbel = -torch.log(-torch.log(u.clamp_min(torch.finfo(u.dtype).tiny)))
        confidence = torch.where(unknown, confidence + choice_temperature * (1 - r) * gumbel, torch.inf)
        mask_len = 0 if t == total_iter - 1 else min(math.floor(n_masked * gamma(r)), int(unknown.sum()))
        ranks = confidence.argsort(dim=1, stable=True).argsort(dim=1)
        unknown = unknown & (ranks < mask_len)
        indices = torch.where(unknown, mask_id, sampled)
        pictures.append(to_image(sampled))  # this step's picture: its samples fill the holes
    return indices, pictures


def pass_ours(transformer: BidirectionalTransformer, vqgan: VQGAN, tokens: Tensor, masked: Tensor,
              seeds: Tensor, args: argparse.Namespace, device: torch.device) -> list[tuple]:
    """Batched decoding, then one VQGAN decode per batch: (seconds, phase seconds, tokens) per batch."""
    out = []
    batch = args.batch_size or len(tokens)
    for tok, msk, sd in zip(tokens.split(batch), masked.split(batch), seeds.split(batch), strict=True):
        clock = Clock(device)
        synchronize(device)
        start = time.perf_counter()
        settings = DecodeSettings(total_iter=args.total_iter, mask_func=args.mask_func,
                                  choice_temperature=args.choice_temperature)
        result = decode(clock.timed("transformer", transformer), tok, msk, settings,
                        num_codes=transformer.num_codebook_vectors, seeds=sd)
        clock.timed("vqgan", lambda t: LAB_TEST.to_uint8(vqgan.decode_tokens(t)))(result.tokens)
        synchronize(device)
        out.append((time.perf_counter() - start, clock.seconds, result.tokens))
    return out


def pass_lab(transformer: BidirectionalTransformer, vqgan: VQGAN, tokens: Tensor, masked: Tensor,
             seeds: Tensor, args: argparse.Namespace, device: torch.device) -> list[tuple]:
    """`lab_style_inpaint_one` image by image: (seconds, phase seconds, tokens) per image."""
    out = []
    for i in range(len(tokens)):
        clock = Clock(device)
        generator = torch.Generator(device).manual_seed(int(seeds[i]))
        synchronize(device)
        start = time.perf_counter()
        result, _ = lab_style_inpaint_one(transformer, vqgan, tokens[i:i + 1], masked[i:i + 1],
                                          total_iter=args.total_iter, mask_func=args.mask_func,
                                          choice_temperature=args.choice_temperature,
                                          generator=generator, clock=clock)
        synchronize(device)
        out.append((time.perf_counter() - start, clock.seconds, result))
    return out


def summarise(passes: list[list[tuple]], n_images: int) -> dict:
    """Figures over all timed passes of one mode (each pass decodes all `n_images` once)."""
    runs = [r for one in passes for r in one]
    seconds = sum(r[0] for r in runs)
    split = {phase: sum(r[1][phase] for r in runs) for phase in ("transformer", "vqgan")}
    n = n_images * len(passes)
    return {"images": n, "seconds": seconds, "images_per_s": n / seconds, "s_per_image": seconds / n,
            "transformer_s_per_image": split["transformer"] / n, "vqgan_s_per_image": split["vqgan"] / n,
            "other_s_per_image": (seconds - sum(split.values())) / n,
            "pass_seconds": [sum(r[0] for r in one) for one in passes]}


def well_formed(result: Tensor, tokens: Tensor, masked: Tensor, num_codes: int) -> bool:
    """Known tokens kept, every hole filled with a real code."""
    return bool((result[~masked] == tokens[~masked]).all() and (result < num_codes).all())


@exit_on_user_error
def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if not args.data_root:
        raise ConfigError("no data set: pass --data-root or set MASKGIT_DATA_ROOT")
    if min(args.images, args.total_iter, args.repeats, args.batch_size or 1) < 1:
        raise ConfigError("--images, --total-iter, --repeats and --batch-size must be >= 1")
    get_schedule(args.mask_func)
    device = resolve_device(args.device)
    load_before = os.getloadavg()
    layout = scan_layout(args.data_root, splits=("test",), limit={"test": args.images})
    if len(layout.test_files) < args.images:
        raise ConfigError(f"{layout.root}/masked_image holds {len(layout.test_files)} images, "
                          f"--images {args.images} needs more")
    images = LAB_TEST.normalize(torch.stack([read_image(f) for f in layout.test_files])).to(device)
    masked = pixel_to_token_mask(torch.stack([read_mask(f) for f in layout.mask_files])).to(device)
    seeds = torch.arange(args.images) + args.seed * SEED_STRIDE
    batch = args.batch_size or args.images

    torch.manual_seed(args.seed)
    vqgan = VQGAN().to(device).eval()
    transformer = BidirectionalTransformer().to(device).eval()
    # mode -> (pass function, fused attention); the lab's attention is always the hand-written one
    modes = {"ours": (pass_ours, False), "lab": (pass_lab, False)}
    if args.fused:
        modes["ours_fused"] = (pass_ours, True)
    passes: dict[str, list[list[tuple]]] = {name: [] for name in modes}
    with torch.inference_mode():
        tokens = torch.cat([vqgan.tokenize(x) for x in images.split(64)])  # shared, not timed
        for run, fused in modes.values():  # warm-up: first batch / first image, not timed
            transformer.set_fused_attention(fused)
            n = batch if run is pass_ours else 1
            run(transformer, vqgan, tokens[:n], masked[:n], seeds[:n], args, device)
        for _ in range(args.repeats):  # modes interleaved, so a change in machine load hits all
            for name, (run, fused) in modes.items():
                transformer.set_fused_attention(fused)
                passes[name].append(run(transformer, vqgan, tokens, masked, seeds, args, device))
        transformer.set_fused_attention(False)
    load_after = os.getloadavg()

    results = {name: summarise(p, args.images) for name, p in passes.items()}
    final = {name: torch.cat([r[2] for r in p[-1]]) for name, p in passes.items()}
    num_codes = transformer.num_codebook_vectors
    checks = {name: well_formed(out, tokens, masked, num_codes) for name, out in final.items()}
    lab_passes = results["lab"]["pass_seconds"]
    for r in results.values():
        r["over_lab"] = r["images_per_s"] / results["lab"]["images_per_s"]
        r["over_lab_per_pass"] = [b / a for a, b in zip(r["pass_seconds"], lab_passes, strict=True)]
    n_params = sum(p.numel() for p in transformer.parameters())
    n_vq = sum(p.numel() for p in vqgan.parameters())
    print(f"device {device} ({platform.processor() or platform.machine()}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; load average {load_before[0]:.2f} before, "
          f"{load_after[0]:.2f} after")
    print(f"transformer lab size ({n_params / 1e6:.1f} M params), VQGAN lab size ({n_vq / 1e6:.1f} M), "
          f"random weights; {args.images} test images, T={args.total_iter} {args.mask_func}; ours in "
          f"batches of {batch}; {args.repeats} timed pass(es) per mode after 1 warm-up batch/image")
    print(f"{'mode':<30}{'images/s':>9}{'s/image':>9}{'transformer':>13}{'VQGAN':>8}{'other':>8}"
          f"{'vs lab':>8}")
    labels = {"ours": "ours (batched, 1 VQGAN decode)", "ours_fused": "ours + fused attention",
              "lab": f"lab (1 image, {args.total_iter} VQGAN dec.)"}
    for name, r in results.items():
        print(f"{labels[name]:<30}{r['images_per_s']:>9.3f}{r['s_per_image']:>9.2f}"
              f"{r['transformer_s_per_image']:>11.2f} s{r['vqgan_s_per_image']:>6.2f} s"
              f"{r['other_s_per_image']:>6.2f} s{r['over_lab']:>7.2f}x")
    if args.repeats > 1:
        for name, r in results.items():
            if name != "lab":
                spread = ", ".join(f"{x:.2f}x" for x in r["over_lab_per_pass"])
                print(f"{name} / lab per pass: {spread}")
    print(f"known tokens kept and every hole filled: {checks}")
    if "ours_fused" in final:
        differ = int((final["ours_fused"] != final["ours"]).sum())
        print(f"fused vs hand-written attention: {differ} of {final['ours'].numel()} tokens differ")

    report = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
              "loadavg_before": load_before, "loadavg_after": load_after,
              "transformer_params": n_params, "vqgan_params": n_vq, "images": args.images,
              "batch_size": batch, "repeats": args.repeats, "total_iter": args.total_iter,
              "mask_func": args.mask_func, "choice_temperature": args.choice_temperature,
              "seed": args.seed, **results, "ours_over_lab": results["ours"]["over_lab"],
              "well_formed": checks}
    if args.json:
        save_json(report, args.json)
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
