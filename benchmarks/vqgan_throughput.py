"""Stage-1 training throughput (images/s) of the VQGAN configs, without and with the GAN.

Runs the real `VQGANTraining.training_step` (manual optimisation, adaptive weight, both Adam
steps) in a Lightning Trainer on random lab-normalised batches; warm-up steps are excluded. Also
times decoding the train/val JPEGs into memory when --data-root is given.

    python benchmarks/vqgan_throughput.py --vqgan tiny small --batch-size 32 --steps 12 --threads 1
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import lightning as L
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from maskgit.data.images import LAB_TRAIN, read_image
from maskgit.data.layout import scan_layout
from maskgit.modules.vqgan_training import VQGANTraining

CONF = Path(__file__).resolve().parents[1] / "conf"


class StepTimer(L.Callback):
    def __init__(self):
        self.times: list[float] = []

    def on_train_batch_start(self, *args) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, *args) -> None:
        self.times.append(time.perf_counter() - self._start)


def images_per_second(vqgan: str, gan: bool, batch_size: int, steps: int, warmup: int) -> float:
    arch = OmegaConf.to_container(OmegaConf.load(CONF / "vqgan" / f"{vqgan}.yaml"))
    arch["ckpt_path"] = None
    stage1 = OmegaConf.to_container(OmegaConf.load(CONF / "model" / "stage1.yaml"))
    model = VQGANTraining(vqgan=arch, loss={"disc": {"enabled": gan, "start": 0}},
                          **{k: stage1[k] for k in ("optimizer", "disc_lr", "grad_clip")})
    images = LAB_TRAIN.normalize(torch.randint(0, 256, (batch_size, 3, 64, 64), dtype=torch.uint8))
    data = DataLoader(images.repeat(steps + warmup, 1, 1, 1), batch_size=batch_size)
    timer = StepTimer()
    L.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
              enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
              callbacks=[timer]).fit(model, data)
    return batch_size * steps / sum(timer.times[warmup:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vqgan", nargs="+", default=["tiny", "small"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--data-root", default=None, help="also time decoding train/ and val/")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch threads: {torch.get_num_threads()}, batch {args.batch_size}, {args.steps} timed steps")
    if args.data_root:
        layout = scan_layout(args.data_root, check_images=False)
        start = time.perf_counter()
        n = len(torch.stack([read_image(f) for f in layout.train_files + layout.val_files]))
        print(f"decode {n} train+val images: {time.perf_counter() - start:.1f} s")
    print(f"{'vqgan':8s} {'GAN':>5s} {'images/s':>9s}")
    for vqgan in args.vqgan:
        for gan in (False, True):
            rate = images_per_second(vqgan, gan, args.batch_size, args.steps, args.warmup)
            print(f"{vqgan:8s} {'on' if gan else 'off':>5s} {rate:9.1f}", flush=True)


if __name__ == "__main__":
    main()
