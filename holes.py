"""Where MaskGIT beats classical inpainting, by hole size: python holes.py +models.<name>=<ckpt> ...

Each model inpaints the test split under every hole setting of conf/holes.yaml (boxes from ~5% to
~60% of the image, free-form strokes of growing width, the lab's own masks); the baselines are scored
beside them on the same images and masks. Writes the table, the FID curve, a picture and each
model's crossover into logs/holes/runs/<time>/.
"""

from pathlib import Path

import hydra
from omegaconf import DictConfig

from maskgit.errors import exit_on_user_error

CONF_DIR = Path(__file__).resolve().parent / "conf"


@hydra.main(version_base="1.3", config_path="conf", config_name="holes")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    from maskgit.tasks.holes import run_holes

    run_holes(cfg, CONF_DIR)


if __name__ == "__main__":
    main()
