"""The GPU check: every figure the GPU targets need, from one command, in a few minutes.

Sections (each one written to the report as soon as it is done, so a stopped run keeps what it has):

  train      the lab-size transformer's MVTM step (`MaskGIT._mvtm_loss`, backward, AdamW) in bf16
             autocast with fused attention, torch.compile off and on: ms/step, images/s, the time of
             one 12,000-image epoch, FLOPs/image, achieved TFLOP/s, peak memory
  decode     batched decoding of the test images at the grid's largest T for each mask function,
             then the VQGAN decode of the results: s per image per step, TFLOP/s, peak memory
  inception  the genuine FID Inception features of the test images: images/s
  grid       the 3 x 28 sweep's time extrapolated from the three above (with --full-grid: measured)
  ddp        a 2-process DDP training step (NCCL on 2 GPUs; gloo on the CPU in --tiny mode), its
             gradients checked equal on both ranks
  sweep      a small sweep through hydra/launcher=gpus (Ray, one point per GPU) with 1 and with all
             visible GPUs: points per minute and the speed-up (benchmarks/sweep_scaling.py)

Targets: an epoch in at most 10 s and the whole grid in at most 10 min on one H100-class GPU.
Weights are random (timing does not depend on them); the test images are the data set's when one
is given, else random images. `--tiny` runs every section with tiny models on the CPU in seconds;
the test suite runs it so that this script cannot rot.

    bash benchmarks/gpu_check.sh --out gpu_check        # on a GPU machine
    python benchmarks/gpu_check.py --tiny --out /tmp/gc # anywhere
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from maskgit.config.compose import model_configs
from maskgit.data.images import LAB_TEST, read_image
from maskgit.data.layout import scan_layout
from maskgit.decoding.iterative import DecodeSettings, decode
from maskgit.errors import ConfigError, exit_on_user_error
from maskgit.metrics.fid import FIDSettings, extractor
from maskgit.models.vqgan import VQGAN
from maskgit.modules.maskgit import MaskGIT
from maskgit.utils.atomic import atomic_path, save_json
from maskgit.utils.perf import (
    LAB_EPOCH_IMAGES,
    Grid,
    count_flops,
    peak_memory,
    reset_peak_memory,
    resolve_device,
    synchronize,
    tflops,
    time_calls,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sweep_scaling import sweep_section  # noqa: E402  (benchmarks/ is not a package)

EPOCH_TARGET_S, GRID_TARGET_S = 10.0, 600.0


@dataclass(frozen=True)
class Sizes:
    vqgan: str = "lab"
    model: str = "lab"
    batch_size: int = 64
    train_steps: int = 20
    train_warmup: int = 5
    images: int = 747
    decode_batch: int = 256
    grid: Grid = Grid()


TINY = Sizes(vqgan="tiny", model="tiny", batch_size=4, train_steps=2, train_warmup=1, images=6,
             decode_batch=4, grid=Grid(total_iters=(1, 2, 3), images=6))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="folder for gpu_check.json and gpu_check.md")
    p.add_argument("--tiny", action="store_true", help="tiny models, few images, CPU: checks the script")
    p.add_argument("--data-root", default=os.environ.get("MASKGIT_DATA_ROOT"),
                   help="cat_face data set for the test images (default: $MASKGIT_DATA_ROOT; else random)")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda")
    p.add_argument("--batch-size", type=int, default=None, help="training batch (default 64)")
    p.add_argument("--train-steps", type=int, default=None, help="timed training steps per mode")
    p.add_argument("--decode-batch", type=int, default=None, help="images per decoding batch")
    p.add_argument("--compile", choices=["both", "off", "on"], default=None,
                   help="torch.compile modes to time (default: both; --tiny: off)")
    p.add_argument("--full-grid", action="store_true",
                   help="decode every grid point instead of extrapolating")
    p.add_argument("--budget-s", type=float, default=480.0,
                   help="sections not started within this many seconds are skipped (reported as such)")
    return p.parse_args(argv)


def build_model(sizes: Sizes, workdir: Path, device: torch.device) -> MaskGIT:
    """The project's LightningModule with a random VQGAN written in the real file format."""
    vqgan_cfg, model_cfg = model_configs(sizes.vqgan, sizes.model)
    arch = {k: v for k, v in vqgan_cfg.items() if k != "ckpt_path"}
    ckpt = workdir / "VQGAN.pt"
    if not ckpt.exists():
        torch.manual_seed(0)
        torch.save(VQGAN(**arch).state_dict(), ckpt)
    transformer = {**model_cfg["transformer"], "fused_attention": True}
    torch.manual_seed(0)
    return MaskGIT(vqgan={**arch, "ckpt_path": str(ckpt)}, transformer=transformer,
                   mvtm=model_cfg["mvtm"], optimizer=model_cfg["optimizer"],
                   scheduler=model_cfg["scheduler"]).to(device)


def autocast(device: torch.device):
    """bf16 autocast on a GPU; float32 on a CPU (bf16 convolutions there are slower, not faster)."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()


def precision(device: torch.device) -> str:
    return "bf16 autocast" if device.type == "cuda" else "float32"


def test_images(data_root: str | None, n: int) -> tuple[torch.Tensor, str]:
    """(n, 3, 64, 64) uint8 test images: the data set's masked test images, or random ones."""
    if data_root:
        layout = scan_layout(data_root, splits=("test",), limit={"test": n})
        if len(layout.test_files) >= n:
            return torch.stack([read_image(f) for f in layout.test_files[:n]]), f"{layout.root} (test)"
    return torch.randint(0, 256, (n, 3, 64, 64), dtype=torch.uint8), "random images"


# -- sections ----------------------------------------------------------------------------------
def train_section(sizes: Sizes, model: MaskGIT, device: torch.device, compile_modes: list[bool]) -> dict:
    """MVTM steps on random tokens (the cost does not depend on them) per torch.compile mode."""
    codes, length = model.num_codes, model.transformer.num_image_tokens
    gen = torch.Generator(device).manual_seed(0)
    tokens = torch.randint(0, codes, (sizes.batch_size, length), device=device, generator=gen)
    initial = {k: v.clone() for k, v in model.transformer.state_dict().items()}
    eager = model.transformer
    out: dict = {"batch_size": sizes.batch_size, "steps": sizes.train_steps, "precision": precision(device),
                 "attention": "fused (scaled_dot_product_attention)"}
    for compiled in compile_modes:
        eager.load_state_dict(initial)
        model.transformer = torch.compile(eager) if compiled else eager
        model.train()
        optimizer = model.build_optimizer()

        def step(optimizer: torch.optim.Optimizer = optimizer) -> None:
            with autocast(device):
                loss, _, _ = model._mvtm_loss(tokens, gen)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        start = time.perf_counter()
        step()  # the first step pays for compilation
        first_s = time.perf_counter() - start
        flops = count_flops(step) if not compiled else out.get("flops_per_step")
        reset_peak_memory(device)
        seconds = time_calls(step, device, calls=sizes.train_steps, warmup=sizes.train_warmup)
        per_step = sum(seconds) / len(seconds)
        images_per_s = sizes.batch_size / per_step
        out["flops_per_step"] = flops
        out["compile_on" if compiled else "compile_off"] = {
            "first_step_s": first_s, "ms_per_step": 1e3 * per_step, "images_per_s": images_per_s,
            "epoch_s": LAB_EPOCH_IMAGES / images_per_s, "tflops": tflops(flops, per_step),
            "peak_memory": peak_memory(device)}
    model.transformer = eager
    out["flops_per_image"] = out["flops_per_step"] / sizes.batch_size
    return out


def decode_section(sizes: Sizes, model: MaskGIT, images: torch.Tensor, device: torch.device,
                   full_grid: bool) -> dict:
    """Decode every test image at the grid's largest T for each mask function (or every point)."""
    model.eval()
    grid, batch = sizes.grid, sizes.decode_batch
    with torch.no_grad(), autocast(device):
        tokens = torch.cat([model.vqgan.tokenize(LAB_TEST.normalize(x.to(device)))
                            for x in images.split(batch)])
    masked = torch.rand(tokens.shape, generator=torch.Generator().manual_seed(1)).to(device) < 0.3
    seeds = torch.arange(len(tokens))
    with torch.no_grad():
        flops_step = count_flops(lambda: model.transformer(tokens[:1]))

    def one_point(mask_func: str, total_iter: int) -> torch.Tensor:
        results = []
        with torch.no_grad(), autocast(device):
            for tok, msk, sd in zip(tokens.split(batch), masked.split(batch), seeds.split(batch),
                                    strict=True):
                settings = DecodeSettings(total_iter=total_iter, mask_func=mask_func)
                results.append(decode(model.transformer, tok, msk, settings, num_codes=model.num_codes,
                                      seeds=sd).tokens)
        return torch.cat(results)

    one_point(grid.mask_funcs[0], 2)  # warm-up
    reset_peak_memory(device)
    points = ([(f, t) for f in grid.mask_funcs for t in grid.total_iters] if full_grid
              else [(f, max(grid.total_iters)) for f in grid.mask_funcs])
    steps, seconds, filled = 0, 0.0, None
    for mask_func, total_iter in points:
        (s,) = time_calls(lambda m=mask_func, t=total_iter: one_point(m, t), device, calls=1, warmup=0)
        seconds, steps = seconds + s, steps + total_iter
    filled = one_point(grid.mask_funcs[0], 1)

    with torch.no_grad(), autocast(device):
        vq_seconds = time_calls(lambda: [model.vqgan.decode_tokens(t) for t in filled.split(batch)],
                                device, calls=1, warmup=1)[0]
    step_s = seconds / (steps * len(tokens))
    return {"images": len(tokens), "batch": batch, "points_timed": len(points), "full_grid": full_grid,
            "steps_timed": steps, "seconds": seconds, "s_per_image_step": step_s,
            "flops_per_image_step": flops_step, "tflops": tflops(flops_step, step_s),
            "vqgan_decode_s_per_image": vq_seconds / len(tokens), "peak_memory": peak_memory(device)}


def inception_section(images: torch.Tensor, device: torch.device, batch: int) -> dict:
    net = extractor(FIDSettings()).to(device)
    run = lambda: [net(x.to(device)) for x in images.split(batch)]  # noqa: E731
    (seconds,) = time_calls(run, device, calls=1, warmup=1)
    return {"images": len(images), "batch": batch, "seconds": seconds,
            "s_per_image": seconds / len(images), "images_per_s": len(images) / seconds}


def grid_section(sizes: Sizes, decoded: dict, inception: dict) -> dict:
    """The sweep's time: transformer steps, plus each point's VQGAN decode and Inception features."""
    grid = sizes.grid
    per_point = decoded["vqgan_decode_s_per_image"] + inception["s_per_image"]
    if decoded["full_grid"]:
        seconds = decoded["seconds"] + grid.points * grid.images * per_point
        how = "decoding measured at every point; VQGAN and Inception per point from one timing"
    else:
        seconds = grid.seconds(decoded["s_per_image_step"], per_point)
        how = "extrapolated from the largest-T points"
    return {"points": grid.points, "transformer_steps": grid.transformer_steps, "images": grid.images,
            "seconds": seconds, "how": how}


def _ddp_worker(rank: int, world: int, backend: str, init_file: str, sizes: Sizes, workdir: str,
                result_dir: str) -> None:
    device = torch.device(f"cuda:{rank}" if backend == "nccl" else "cpu")
    if backend == "nccl":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        model = build_model(sizes, Path(workdir), device)
        ddp = torch.nn.parallel.DistributedDataParallel(
            model.transformer, device_ids=[rank] if backend == "nccl" else None)
        optimizer = model.build_optimizer(ddp.module)
        gen = torch.Generator(device).manual_seed(100 + rank)  # each rank its own batch
        tokens = torch.randint(0, model.num_codes, (sizes.batch_size, model.transformer.num_image_tokens),
                               device=device, generator=gen)
        model.transformer = ddp  # the real MVTM step, through the DDP wrapper
        model.train()
        seconds = []
        for _ in range(3):
            synchronize(device)
            start = time.perf_counter()
            with autocast(device):
                loss, _, _ = model._mvtm_loss(tokens, gen)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grads = torch.cat([p.grad.flatten() for p in ddp.module.parameters() if p.grad is not None])
            optimizer.step()
            synchronize(device)
            seconds.append(time.perf_counter() - start)
        both = [torch.zeros_like(grads) for _ in range(world)]
        dist.all_gather(both, grads)
        same = bool(torch.equal(both[0], both[1]))
        if rank == 0:
            save_json({"world_size": world, "backend": backend, "ms_per_step": 1e3 * min(seconds),
                       "gradients_equal_on_ranks": same}, Path(result_dir) / "ddp.json")
    finally:
        dist.destroy_process_group()


def ddp_section(sizes: Sizes, device: torch.device, tiny: bool, workdir: Path) -> dict:
    if device.type == "cuda" and torch.cuda.device_count() >= 2:
        backend = "nccl"
    elif tiny:
        backend = "gloo"
    else:
        return {"skipped": f"{torch.cuda.device_count()} GPU(s): a 2-process DDP step needs 2"}
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_ddp_worker, args=(2, backend, str(Path(tmp) / "init"), sizes, str(workdir), tmp),
                 nprocs=2, join=True)
        return json.loads((Path(tmp) / "ddp.json").read_text())


# -- report ------------------------------------------------------------------------------------
def environment(device: torch.device) -> dict:
    import lightning

    env = {"device": str(device), "torch": torch.__version__, "lightning": lightning.__version__,
           "python": platform.python_version(), "processor": platform.processor() or platform.machine(),
           "cpu_threads": torch.get_num_threads()}
    if device.type == "cuda":
        env["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        env["cuda"] = torch.version.cuda
    return env


def markdown(report: dict) -> str:
    env = report["environment"]
    lines = ["# GPU check", "",
             f"{env.get('gpus', [env['processor']])[0]} ({env['device']}), torch {env['torch']}, "
             f"lightning {env['lightning']}; sizes: {report['sizes']}; test images: "
             f"{report.get('images', '-')}", "",
             "| target | measured | goal | met |", "|---|---|---|---|"]
    train, grid = report.get("train", {}), report.get("grid", {})
    for mode in ("compile_off", "compile_on"):
        if mode in train:
            e = train[mode]["epoch_s"]
            lines.append(f"| stage-2 epoch, 12,000 images ({mode.replace('_', ' ')}) | {e:.1f} s | "
                         f"<= {EPOCH_TARGET_S:.0f} s | {'yes' if e <= EPOCH_TARGET_S else 'no'} |")
    if "seconds" in grid:
        g = grid["seconds"]
        lines.append(f"| 3 x 28 FID grid ({grid['how']}) | {g / 60:.1f} min | <= {GRID_TARGET_S / 60:.0f} min"
                     f" | {'yes' if g <= GRID_TARGET_S else 'no'} |")
    lines += ["", "| section | figures |", "|---|---|"]
    for name in ("train", "decode", "inception", "ddp", "sweep"):
        lines.append(f"| {name} | {_flat(report.get(name, {'skipped': 'not run'}))} |")
    if report.get("skipped"):
        lines += ["", f"Skipped: {report['skipped']}"]
    return "\n".join(lines) + "\n"


def _flat(d: dict) -> str:
    def fmt(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)
    return "; ".join(f"{k}: {_flat(v) if isinstance(v, dict) else fmt(v)}" for k, v in d.items())


@exit_on_user_error
def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    started = time.perf_counter()
    device = resolve_device("cpu" if args.tiny else args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no GPU is visible to torch")
    sizes = TINY if args.tiny else Sizes()
    for name in ("batch_size", "train_steps", "decode_batch"):
        value = getattr(args, name)
        if value is not None:
            if value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
            sizes = replace(sizes, **{name: value})
    compile_modes = {"both": [False, True], "off": [False], "on": [True]}[
        args.compile or ("off" if args.tiny else "both")]
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict = {"environment": environment(device), "sizes": f"{sizes.model} transformer, "
                    f"{sizes.vqgan} VQGAN, train batch {sizes.batch_size}, {sizes.images} test images",
                    "skipped": []}

    def save() -> None:
        save_json(report, args.out / "gpu_check.json")
        with atomic_path(args.out / "gpu_check.md") as tmp:
            tmp.write_text(markdown(report))

    def section(name: str, fn: Callable[[], dict]) -> None:
        if time.perf_counter() - started > args.budget_s:
            report["skipped"].append(f"{name} (over the {args.budget_s:.0f} s budget)")
        else:
            start = time.perf_counter()
            report[name] = {**fn(), "section_s": time.perf_counter() - start}
            print(f"{name}: {_flat(report[name])}", flush=True)
        save()

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        model = build_model(sizes, workdir, device)
        images, source = test_images(args.data_root, sizes.images)
        report["images"] = source
        section("train", lambda: train_section(sizes, model, device, compile_modes))
        section("decode", lambda: decode_section(sizes, model, images, device, args.full_grid))
        section("inception", lambda: inception_section(images, device, sizes.decode_batch))
        if "decode" in report and "inception" in report:
            section("grid", lambda: grid_section(sizes, report["decode"], report["inception"]))
        section("ddp", lambda: ddp_section(sizes, device, args.tiny, workdir))
        gpus = torch.cuda.device_count() if device.type == "cuda" else 0
        section("sweep", lambda: sweep_section(workdir, args.data_root, sizes.vqgan, sizes.model,
                                               workdir / "VQGAN.pt", args.tiny, gpus))
    report["total_s"] = time.perf_counter() - started
    save()
    print(f"report: {args.out / 'gpu_check.md'}")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
