"""Train the stage-2 transformer: python train.py [experiment=...] [key=value ...]"""

import hydra
from omegaconf import DictConfig

from maskgit.errors import exit_on_user_error
from maskgit.tasks.train import train


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    train(cfg)


if __name__ == "__main__":
    main()
