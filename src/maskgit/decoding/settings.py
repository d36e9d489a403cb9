"""The decoding settings: `DecodeSettings` is their one definition.

Each field is an eval.py setting at the top level of the config (`mask_func=cosine total_iter=8
sweet_spot=-1 ...`, as the lab's scripts and the mission's sweep spell them) and carries, beside its
default, what it takes (a `maskgit.config.setting.Setting`: checked here, in `check`, and by
eval.py's settings table) and the line `python eval.py --help` shows. From the fields come the Hydra
defaults (the base of the `decoding` presets, conf/decoding/), the settings table's entries, the sweep
point's key (`canonical`) and the help text, so a new option is one field with its documentation.

The sweet spot counts steps as the lab's `inpainting.py` does (`if step == sweet_spot: break` before
step `step` runs): `sweet_spot=s` runs s of the total_iter steps and keeps the s-th step's prediction
for every token still masked; -1 (or total_iter) runs all of them.
"""

from __future__ import annotations

import textwrap
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from maskgit.config.setting import Setting, choice, integer, names_in, number
from maskgit.errors import ConfigError

DECODING = "maskgit.decoding.iterative"  # where the schedules and orders are (it imports this module)
ALL_STEPS = -1  # sweet_spot: run every one of the total_iter steps


def option(default: Any, setting: Setting, help: str) -> Any:
    """A decoding field: its default, what it takes, and its `eval.py --help` line."""
    return field(default=default, metadata={"setting": setting, "help": help})


class SweetSpotBeyondSteps(ConfigError):
    """sweet_spot > total_iter: refused in a single run, a point skipped by rule (n/a) in a sweep grid."""


@dataclass(frozen=True)
class DecodeSettings:
    """Everything `maskgit.decoding.iterative.decode` is asked to do. Invalid values raise ConfigError
    (one line)."""

    mask_func: str = option("cosine", choice(names_in(DECODING, "MASK_SCHEDULES", sort=True)),
                            "mask schedule gamma(r): linear, cosine, square, cubic, sqrt, arccos")
    total_iter: int = option(8, integer(1, what="decoding steps T"), "T, the decoding steps")
    sweet_spot: int = option(ALL_STEPS, integer(1, what="steps run, 1..total_iter; -1: all",
                                                also=(ALL_STEPS,)),
                             "steps run, as the lab counts them: s stops after s of the T steps, every "
                             "token still masked takes step s's code (-1 or T: all)")
    choice_temperature: float = option(4.5, number(0, what="0: no noise on the confidences"),
                                       "Gumbel noise x (1 - r) on the confidences that pick the tokens "
                                       "kept masked")
    confidence: str = option("prob", choice(names_in("maskgit.decoding.iterative", "CONFIDENCES")),
                             "prob (the lab's template) or logprob (google-research/maskgit)")
    temperature: float = option(1.0, number(0, what="0: the most likely code"),
                                "sampling temperature of the codes; 0: the most likely code (argmax)")
    seed: int = option(0, integer(0, 2**32 - 1),
                       "decoding noise: image i's comes from (seed, i); same seed, same result")
    guidance: float = option(0.0, number(0, what="classifier-free guidance scale w; 0: none"),
                             "classifier-free guidance w of a class-conditional model (0: none)")
    guidance_schedule: str = option("constant", choice(names_in(DECODING, "GUIDANCE_SCHEDULES")),
                                    "w over the steps: constant, or linear (w * (t+1)/T)")
    order: str = option("confidence", choice(names_in(DECODING, "ORDERS")),
                        "which tokens each step reveals: confidence (MaskGIT) or halton (a fixed "
                        "low-discrepancy order)")

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Each field against its Setting, then sweet_spot <= total_iter (SweetSpotBeyondSteps)."""
        for f in fields(self):
            problem = f.metadata["setting"].problem(f.name, getattr(self, f.name))
            if problem is not None:
                raise ConfigError(problem)
        if self.sweet_spot > self.total_iter:
            raise SweetSpotBeyondSteps(
                f"sweet_spot={self.sweet_spot} > total_iter={self.total_iter}: a decoding of "
                f"{self.total_iter} steps stops after at most {self.total_iter} (sweet_spot=-1 runs all)")

    @classmethod
    def from_config(cls, cfg: Any) -> DecodeSettings:
        """The fields from a config's top level (absent ones keep their defaults), as their types."""
        values = {}
        for f in fields(cls):
            value = cfg.get(f.name, f.default)
            # 4 for a float field is 4.0; anything else is left for `check` to name
            values[f.name] = float(value) if f.type == "float" and isinstance(value, int) \
                and not isinstance(value, bool) else value
        return cls(**values)

    @property
    def steps_run(self) -> int:
        """How many of the total_iter steps run (the sweet spot, or all)."""
        return self.total_iter if self.sweet_spot == ALL_STEPS else self.sweet_spot

    @property
    def last_step(self) -> int:
        """The 0-based step whose tokens are the result."""
        return self.steps_run - 1

    def image_seeds(self, index: Any) -> Any:
        """The noise seeds of the images numbered `index` (a tensor): eval.py's test image i and the
        Python API's image i of a call draw the same noise."""
        return index + self.seed * 1_000_003

    def memo_key(self, scope: str) -> tuple:
        """Everything but the sweet spot: the sweet spots of one decoding are served from its steps.
        `scope` identifies the model and the tokens decoded."""
        return (scope, *sorted((k, v) for k, v in asdict(self).items() if k != "sweet_spot"))

    def canonical(self) -> dict[str, Any]:
        """The settings with equal results mapped to equal values (the sweep point key's decoding).

        Every field counts, except where the rules below show it cannot change the result:
        - sweet_spot is the steps run, -1 when that is all total_iter (sweet_spot=T is -1);
        - one step run (T=1 or sweet_spot=1) takes step 1's code for every masked token: the schedule,
          T (unless guidance grows with (t+1)/T), the choice noise, confidence and order then decide
          nothing;
        - order=halton replaces the confidences and their noise;
        - guidance_schedule matters only with guidance.
        """
        d = asdict(self)
        d["sweet_spot"] = ALL_STEPS if self.steps_run == self.total_iter else self.steps_run
        drop = set()
        if self.steps_run == 1:
            drop |= {"mask_func", "sweet_spot", "choice_temperature", "confidence", "order"}
            if not (self.guidance and self.guidance_schedule != "constant"):
                drop.add("total_iter")
        if self.order == "halton":
            drop |= {"choice_temperature", "confidence"}
        if not self.guidance:
            drop.add("guidance_schedule")
        return {k: v for k, v in d.items() if k not in drop}


def defaults() -> dict[str, Any]:
    """Every field's default: the base that the `decoding` presets change."""
    return {f.name: f.default for f in fields(DecodeSettings)}


def setting_table() -> dict[str, Setting]:
    """What each field takes, for eval.py's settings table (`maskgit.config.settings.SETTINGS`)."""
    return {f.name: f.metadata["setting"] for f in fields(DecodeSettings)}


def help_lines(values: dict[str, Any] | None = None, width: int = 100) -> list[str]:
    """`name=value   help` per field (`values`: the composed config's, else the defaults), wrapped to
    `width`, for `python eval.py --help`."""
    lines = []
    for f in fields(DecodeSettings):
        value = (values or {}).get(f.name, f.default)
        head = f"{f.name}={str(value).lower() if isinstance(value, bool) else value}"
        lines += textwrap.wrap(f.metadata["help"], width, initial_indent=head.ljust(25) + " ",
                               subsequent_indent=" " * 26)
    return lines
