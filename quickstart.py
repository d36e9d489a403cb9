"""The whole pipeline on a CPU (~50 min on 2 cores, FID and baselines included): python quickstart.py

Trains a small VQGAN on the cat faces, a small transformer on its tokens, inpaints the real test set,
scores the baselines on the same images and prints both beside each other. `reduced=true`: a few
steps per stage (a smoke test).
"""

from pathlib import Path

import hydra
from omegaconf import DictConfig

from maskgit.errors import exit_on_user_error

CONF_DIR = Path(__file__).resolve().parent / "conf"


@hydra.main(version_base="1.3", config_path="conf", config_name="quickstart")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    from maskgit.tasks.quickstart import run_quickstart

    run_quickstart(cfg, CONF_DIR)


if __name__ == "__main__":
    main()
