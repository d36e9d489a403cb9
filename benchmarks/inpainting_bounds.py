"""Where a checkpoint's inpainting error comes from: the VQGAN, or the transformer?

On the real test set (the data set's masks, eval.py's protocol: no compositing), for the holes and
for the known pixels:

  vqgan ceiling   the ground truth's own tokens, decoded: what perfect token prediction would give
  gt in holes     the masked image's tokens with the ground truth's tokens in the holes (what the
                  holes' gray does to the known tokens around them)
  mean colour     the holes painted with the mean colour of the image's known pixels (no model)
  T=8 @ temp t    the checkpoint's decoding at each `--temperatures` value (eval.py's seeds, so
                  temperature 1 is eval.py's result)

    python benchmarks/inpainting_bounds.py logs/train/runs/<run>/checkpoints/last.ckpt --temperatures 1 0.5 0
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import torch
from torch import Tensor

from maskgit.data.datamodule import ImageDataModule
from maskgit.data.images import LAB_TEST
from maskgit.decoding.iterative import DecodeSettings, decode
from maskgit.errors import ConfigError, exit_on_user_error
from maskgit.metrics.pixels import region_l1_psnr
from maskgit.modules.maskgit import MaskGIT
from maskgit.utils.atomic import save_json

SEED_STRIDE = 1_000_003  # as eval.py: image i of seed s decodes with seed i + s * SEED_STRIDE


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("ckpt_path", help="a train.py checkpoint")
    p.add_argument("--data-root", default=os.environ.get("MASKGIT_DATA_ROOT"),
                   help="cat_face data set with gt/ (default: $MASKGIT_DATA_ROOT)")
    p.add_argument("--images", type=int, default=None, help="first n test images (default: all)")
    p.add_argument("--temperatures", type=float, nargs="+", default=[1.0, 0.5, 0.0])
    p.add_argument("--mask-func", default="cosine")
    p.add_argument("--total-iter", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--cache-dir", default=None, help="token cache (default: a temporary folder)")
    p.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    return p.parse_args(argv)


def mean_colour_fill(masked_images: Tensor, known: Tensor) -> Tensor:
    """Each image's holes painted with the mean colour of its known pixels."""
    k = known[:, None].float()
    mean = (masked_images.float() * k).sum((2, 3), keepdim=True) / k.sum((2, 3), keepdim=True).clamp(min=1)
    return torch.where(known[:, None], masked_images, mean.round().to(torch.uint8))


@exit_on_user_error
def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if not args.data_root:
        raise ConfigError("no data set: pass --data-root or set MASKGIT_DATA_ROOT")
    if any(t < 0 for t in args.temperatures):
        raise ConfigError(f"--temperatures must be >= 0, got {args.temperatures}")
    torch.set_grad_enabled(False)
    model = MaskGIT.from_checkpoint(args.ckpt_path).eval()
    model.transformer.set_fused_attention(True)  # as eval.py
    with tempfile.TemporaryDirectory() as tmp:
        data = ImageDataModule(args.data_root, cache_dir=args.cache_dir or tmp,
                                 encode_batch_size=args.batch_size, limit={"test": args.images})
        data.use_tokenizer(model.vqgan)
        test = data.inpainting_set()
    if test.gt_tokens is None:
        raise ConfigError(f"{args.data_root}/gt is missing: the bounds need the test ground truth")
    known, holes, gt = test.masks, ~test.masks, test.gt_images
    n = len(test)

    def images_of(tokens: Tensor) -> Tensor:
        batches = tokens.split(args.batch_size)
        return torch.cat([LAB_TEST.to_uint8(model.vqgan.decode_tokens(b)) for b in batches])

    rows: dict[str, dict[str, float]] = {}

    def add(name: str, images: Tensor, tokens: Tensor | None = None) -> None:
        masked, acc = test.token_masks, None
        if tokens is not None:
            acc = float(((tokens == test.gt_tokens) & masked).sum() / masked.sum())
        rows[name] = {"hole_psnr": float(region_l1_psnr(images, gt, holes)[1].mean()),
                      "known_psnr": float(region_l1_psnr(images, gt, known)[1].mean()),
                      "masked_token_accuracy": acc}

    add("vqgan ceiling", images_of(test.gt_tokens), test.gt_tokens)
    mixed = torch.where(test.token_masks, test.gt_tokens, test.tokens)
    add("gt in holes", images_of(mixed), mixed)
    add("mean colour", mean_colour_fill(test.masked_images, known))
    seeds = torch.arange(n) + args.seed * SEED_STRIDE
    for t in args.temperatures:
        tokens = torch.cat([
            decode(model.transformer, test.tokens[i:i + args.batch_size],
                   test.token_masks[i:i + args.batch_size],
                   DecodeSettings(total_iter=args.total_iter, mask_func=args.mask_func, temperature=t),
                   num_codes=model.num_codes, seeds=seeds[i:i + args.batch_size]).tokens
            for i in range(0, n, args.batch_size)])
        add(f"T={args.total_iter} @ temp {t:g}", images_of(tokens), tokens)

    print(f"{args.ckpt_path}: {n} test images, {args.mask_func} schedule, seed {args.seed}")
    print(f"{'':<18}{'hole PSNR':>10}{'known PSNR':>12}{'token acc':>11}")
    for name, r in rows.items():
        acc = f"{r['masked_token_accuracy']:.4f}" if r["masked_token_accuracy"] is not None else "-"
        known_psnr = f"{r['known_psnr']:.2f}" if name != "mean colour" else "exact"
        print(f"{name:<18}{r['hole_psnr']:>10.2f}{known_psnr:>12}{acc:>11}")
    report = {"ckpt_path": args.ckpt_path, "images": n, "mask_func": args.mask_func,
              "total_iter": args.total_iter, "seed": args.seed, "rows": rows}
    if args.json:
        save_json(report, args.json)
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
