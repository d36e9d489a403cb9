"""Inpaint the test set and measure it: python eval.py ckpt_path=... [mask_func=cosine total_iter=8]"""

import hydra
from omegaconf import DictConfig

from maskgit.errors import exit_on_user_error
from maskgit.tasks.eval import evaluate


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
