"""Inpaint the test set and measure it: python eval.py ckpt_path=... [mask_func=cosine total_iter=8]

Sweep: python eval.py -m ckpt_path=... mask_func=linear,cosine,square total_iter=1..28 (a..b: inclusive)
Other masks: python eval.py ckpt_path=... masks.source=box|border|freeform
Unconditional samples: python eval.py task=generate ckpt_path=... generate.num_samples=N
"""

import sys

import hydra
from omegaconf import DictConfig

import maskgit.config.settings  # noqa: F401  (registers the decoding presets' base before Hydra composes)
from maskgit.errors import exit_on_user_error
from maskgit.sweeps.syntax import expand_ranges, require_override

CKPT_REQUIRED = "ckpt_path is required: python eval.py ckpt_path=/path/to/last.ckpt"


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    from maskgit.tasks.eval import evaluate  # torch & co. load after the command line is checked

    evaluate(cfg)


if __name__ == "__main__":
    exit_on_user_error(require_override)(sys.argv, "ckpt_path", CKPT_REQUIRED, unless={"task": "baselines"})
    sys.argv = exit_on_user_error(expand_ranges)(sys.argv)  # total_iter=1..28 -> range(1,29)
    main()
