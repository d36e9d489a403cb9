"""Decoding throughput against batch size: images/s, FLOPs per image per step, TFLOP/s, peak memory.

Times `maskgit.decoding.iterative.decode` alone (no VQGAN, no I/O) with a transformer of a `conf/model` size
(random weights, eval mode) at each batch size, on random tokens with the data set's own hole masks
when a data set is given (else ~30% of tokens masked at random; decoding cost does not depend on
which tokens are masked). Each batch size times `--batches` batches after one warm-up batch; the
sizes take turns `--repeats` times so that a change in machine load hits them all.

    python benchmarks/decode_batch_sizes.py --model small --batch-sizes 1 16 64 256 --json out.json

To compare two versions of the code side by side, run this script with each one's `src` first on
PYTHONPATH, alternately.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
from pathlib import Path

import torch

from maskgit.config.compose import model_configs
from maskgit.data.images import read_mask
from maskgit.data.layout import scan_layout
from maskgit.decoding.iterative import DecodeSettings, decode, pixel_to_token_mask
from maskgit.errors import ConfigError, exit_on_user_error
from maskgit.models.transformer import BidirectionalTransformer
from maskgit.utils.atomic import save_json
from maskgit.utils.perf import (
    Grid,
    count_flops,
    peak_memory,
    reset_peak_memory,
    resolve_device,
    tflops,
    time_calls,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="small",
                   help="transformer size: a conf/model name (tiny, small, lab); none: fixed logits "
                        "of the lab's shape, no network (times decoding's own work: noise, sampling, "
                        "selection)")
    p.add_argument("--vqgan", default="quickstart", help="conf/vqgan name: sets the codebook size")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16, 64, 256])
    p.add_argument("--batches", type=int, default=2, help="timed batches per batch size and repeat")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--total-iter", type=int, default=8)
    p.add_argument("--data-root", default=os.environ.get("MASKGIT_DATA_ROOT"),
                   help="cat_face data set whose mask64/ gives the holes (default: $MASKGIT_DATA_ROOT)")
    p.add_argument("--fused", action="store_true", help="fused attention (scaled_dot_product_attention)")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", type=Path, default=None)
    return p.parse_args(argv)


def hole_masks(n: int, length: int, data_root: str | None, generator: torch.Generator) -> torch.Tensor:
    if not data_root:
        return torch.rand(n, length, generator=generator) < 0.3
    layout = scan_layout(data_root, splits=("test",), limit={"test": min(n, 747)})
    masks = pixel_to_token_mask(torch.stack([read_mask(f) for f in layout.mask_files]))
    return masks.repeat((n + len(masks) - 1) // len(masks), 1)[:n]


@exit_on_user_error
def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if min(args.batch_sizes + [args.batches, args.repeats, args.total_iter]) < 1:
        raise ConfigError("--batch-sizes, --batches, --repeats and --total-iter must be >= 1")
    device = resolve_device(args.device)
    cfg = model_configs(args.vqgan, "lab" if args.model == "none" else args.model)[1]["transformer"]
    cfg["fused_attention"] = args.fused
    torch.manual_seed(0)
    net = BidirectionalTransformer(**cfg).to(device).eval()
    codes, length = net.num_codebook_vectors, cfg["num_image_tokens"]
    gen = torch.Generator().manual_seed(0)
    most = max(args.batch_sizes) * args.batches
    if args.model == "none":
        fixed = torch.randn(max(args.batch_sizes), length, codes + 1, generator=gen).to(device)
        model = lambda tokens: fixed[: len(tokens)]  # noqa: E731
        params = 0
    else:
        model, params = net, sum(p.numel() for p in net.parameters())
    tokens = torch.randint(0, codes, (most, length), generator=gen).to(device)
    masked = hole_masks(most, length, args.data_root, gen).to(device)
    seeds = torch.arange(most)

    with torch.no_grad():
        flops_step = count_flops(lambda: model(tokens[:1]))  # one image, one step

    def run(b: int) -> None:
        for i in range(args.batches):
            sl = slice(i * b, (i + 1) * b)
            decode(model, tokens[sl], masked[sl], DecodeSettings(total_iter=args.total_iter), num_codes=codes,
                   seeds=seeds[sl])

    seconds: dict[int, list[float]] = {b: [] for b in args.batch_sizes}
    for b in args.batch_sizes:  # warm-up
        run(b)
    reset_peak_memory(device)
    for _ in range(args.repeats):
        for b in args.batch_sizes:
            seconds[b] += time_calls(lambda b=b: run(b), device, calls=1, warmup=0)
    memory = peak_memory(device)

    rows = []
    for b in args.batch_sizes:
        s = statistics.median(seconds[b])
        images = b * args.batches
        step_s = s / (images * args.total_iter)
        rows.append({"batch_size": b, "images_per_s": images / s, "ms_per_image_step": 1e3 * step_s,
                     "tflops": tflops(flops_step, step_s), "seconds": seconds[b]})
    best = min(r["ms_per_image_step"] for r in rows) / 1e3
    report = {"device": str(device), "processor": platform.processor() or platform.machine(),
              "torch": torch.__version__, "threads": torch.get_num_threads(), "model": args.model,
              "params": params, "fused": args.fused,
              "total_iter": args.total_iter, "batches": args.batches, "repeats": args.repeats,
              "flops_per_image_step": flops_step, "peak_memory": memory, "rows": rows,
              "grid_decode_seconds_at_best": Grid().seconds(best, 0.0)}
    print(f"device {device} ({report['processor']}), torch {torch.__version__}, {report['threads']} "
          f"threads; model {args.model} ({report['params'] / 1e6:.2f} M params), T={args.total_iter}, "
          f"{flops_step / 1e9:.3f} GFLOP per image per step; peak memory "
          f"{memory['gib']:.2f} GiB ({memory['kind']})")
    print(f"{'batch':>6}{'images/s':>10}{'ms/image/step':>15}{'TFLOP/s':>9}")
    for r in rows:
        print(f"{r['batch_size']:>6}{r['images_per_s']:>10.2f}{r['ms_per_image_step']:>15.3f}"
              f"{r['tflops']:>9.4f}")
    grid_min = report["grid_decode_seconds_at_best"] / 60
    print(f"3 x 28 grid, transformer steps alone at the best batch: {grid_min:.1f} min")
    if args.json:
        save_json(report, args.json)
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
