"""The settings table (maskgit.config.settings): it names real keys, the shipped configs pass it, a wrong type
or range is one line naming the key, also through train.py / eval.py before anything is written."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, compose_config
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf, open_dict

from maskgit.config.settings import SETTINGS, Setting, check_settings
from maskgit.errors import ConfigError

ABSENT = object()
CLI_CASES = {  # name: script, arguments, how the one error line begins
    "train_max_epochs": ("train.py", ["trainer.max_epochs=abc"], "trainer.max_epochs must be "),
    "eval_total_iter": ("eval.py", ["ckpt_path=x.ckpt", "total_iter=abc"], "total_iter must be "),
    "eval_choice_temperature": ("eval.py", ["ckpt_path=x.ckpt", "choice_temperature=-1"],
                                "choice_temperature must be "),
    "eval_sweet_spot_zero": ("eval.py", ["ckpt_path=x.ckpt", "sweet_spot=0"], "sweet_spot must be "),
    "eval_sweet_spot_beyond": ("eval.py", ["ckpt_path=x.ckpt", "total_iter=4", "sweet_spot=5"],
                               "sweet_spot=5 > total_iter=4: "),
}


@pytest.fixture(scope="module", autouse=True)
def cli_started(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """The command lines of the last tests, started first (each mostly imports torch and Lightning)
    so that they run beside the other tests, each in an empty folder of its own with a ckpt file."""
    started: dict[str, tuple[subprocess.Popen, Path]] = {}
    if any("cli_runs" in getattr(item, "fixturenames", ()) for item in request.session.items):
        env = {**os.environ, "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "0"}
        for name, (script, args, _) in CLI_CASES.items():
            cwd = tmp_path_factory.mktemp(name)
            (cwd / "x.ckpt").write_bytes(b"")
            started[name] = (subprocess.Popen([sys.executable, str(ROOT / script), *args], cwd=cwd, env=env,
                                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), cwd)
    yield started
    for proc, _ in started.values():
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


# Together these choose every option of every config group, and hold every key of the table.
VARIANTS = [("train", []), ("train", ["experiment=vqgan"]), ("train", ["experiment=quickstart"]),
            ("train", ["experiment=quickstart_vqgan"]), ("train", ["experiment=synthetic_smoke"]),
            ("train", ["experiment=digits_vqgan"]), ("train", ["experiment=digits"]),
            ("train", ["experiment=cpu2h_vqgan"]), ("train", ["experiment=cpu2h"]),
            ("train", ["data=synthetic", "debug=fast", "trainer=ddp", "model=tiny", "vqgan=small",
                       "logger=csv", "callbacks=none"]),
            ("train", ["trainer=gpu", "logger=none"]), ("eval", ["ckpt_path=x.ckpt"]),
            ("eval", ["ckpt_path=x.ckpt", "decoding=paper"]),
            ("eval", ["ckpt_path=x.ckpt", "decoding=quickstart"]),
            ("quickstart", []),
            ("quickstart_2h", [])]
CHOSEN: set[tuple[str, str]] = set()  # (group, option) the variants chose


@pytest.fixture(scope="module")
def configs(tmp_path_factory: pytest.TempPathFactory) -> list[DictConfig]:
    out, composed = tmp_path_factory.mktemp("settings"), []
    for name, overrides in VARIANTS:
        composed.append(compose_config(name, overrides, out, out))
        CHOSEN.update((g, o) for g, o in HydraConfig.get().runtime.choices.items() if o)
    return composed


def _has(cfg: DictConfig, key: str) -> bool:
    return OmegaConf.select(cfg, key, default=ABSENT, throw_on_resolution_failure=False) is not ABSENT


def _with(configs: list[DictConfig] | None, override: str) -> DictConfig:
    """A copy of the first config that has the key (None: a config of that key alone), the key set
    as Hydra parses `key=value` on a command line."""
    parsed = OverridesParser.create().parse_override(override)
    key = parsed.key_or_group
    cfg = OmegaConf.create() if configs is None else copy.deepcopy(next(c for c in configs if _has(c, key)))
    with open_dict(cfg):
        OmegaConf.update(cfg, key, parsed.value(), merge=False)
    return cfg


def _error(cfg: DictConfig) -> str:
    with pytest.raises(ConfigError) as err:
        check_settings(cfg)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_every_key_of_the_table_exists_in_a_config(configs):
    missing = [key for key in SETTINGS if not any(_has(cfg, key) for cfg in configs)]
    assert not missing, f"keys no config has (renamed or removed?): {missing}"
    assert len(SETTINGS) >= 80


def test_every_shipped_config_option_passes(configs):
    for cfg in configs:
        check_settings(cfg)
    conf = ROOT / "conf"
    groups = {next(iter(d)) for primary in ("train", "eval")
              for d in OmegaConf.load(conf / f"{primary}.yaml").defaults if isinstance(d, dict | DictConfig)}
    options = {(g, f.stem) for g in groups - {"hydra"} for f in (conf / g).glob("*.yaml")}
    assert not options - CHOSEN, f"add these to VARIANTS: {sorted(options - CHOSEN)}"


def test_quickstart_checks_every_stage_before_training(tmp_path, cache_dir):
    from maskgit.tasks.quickstart import run_quickstart

    cfg = compose_config("quickstart", ["stages.eval=['total_iter=0']"], tmp_path, cache_dir)
    with pytest.raises(ConfigError, match=r"^total_iter must be a positive integer .*, got 0$"):
        run_quickstart(cfg, ROOT / "conf")
    assert not list(tmp_path.rglob("*.ckpt")) and not (tmp_path / "summary.json").exists()


def _bad_type(setting: Setting) -> str:
    return {"bool": "abc", "path": "[1,2]", "choice": "no_such_value"}.get(setting.kind, "abc")


def _out_of_range(setting: Setting) -> list[str]:
    """Values just outside the range (and a bool where a number is wanted)."""
    if setting.kind not in ("int", "float"):
        return []
    step = 1 if setting.kind == "int" else 0.5
    values: list[float] = []
    if setting.min is not None:
        values.append(setting.min - step if setting.min_inclusive else setting.min)
    if setting.max is not None:
        values.append(setting.max + step if setting.max_inclusive else setting.max)
    values = [v for v in values if not any(a == v and type(a) is type(v) for a in setting.also)]
    return [str(v) for v in values] + ([] if setting.also else ["true"])


@pytest.mark.parametrize("key", sorted(SETTINGS))
def test_a_wrong_type_or_range_is_one_line_naming_the_key(key):
    setting = SETTINGS[key]
    for value in [_bad_type(setting), *_out_of_range(setting)]:
        message = _error(_with(None, f"{key}={value}"))
        assert key in message, (value, message)
        assert message.startswith((f"{key} must be ", f"unknown {key} ")), message


@pytest.mark.parametrize("override, message", [
    ("total_iter=abc", "total_iter must be a positive integer (decoding steps T), got 'abc'"),
    ("total_iter=0", "total_iter must be a positive integer (decoding steps T), got 0"),
    ("choice_temperature=-1", "choice_temperature must be a number >= 0 (0: no noise on the confidences), "
                              "got -1.0"),
    ("sweet_spot=-2", "sweet_spot must be a positive integer or -1 (steps run, 1..total_iter; -1: all), "
                      "got -2"),
    ("sweet_spot=0", "sweet_spot must be a positive integer or -1 (steps run, 1..total_iter; -1: all), "
                     "got 0"),
    ("sweet_spot=9", "sweet_spot=9 > total_iter=8: a decoding of 8 steps stops after at most 8 "
                     "(sweet_spot=-1 runs all)"),
    ("temperature=true", "temperature must be a number >= 0 (0: the most likely code), got True"),
    ("seed=2.5", "seed must be an integer >= 0 and <= 4294967295, got 2.5"),
    ("mask_func=zigzag", "unknown mask_func 'zigzag'; valid: arccos, cosine, cubic, linear, sqrt, square"),
    ("confidence=Prob", "unknown confidence 'Prob'; valid: prob, logprob"),
    ("trainer.max_epochs=abc", "trainer.max_epochs must be an integer >= -1 or null (-1: no limit), got "
                               "'abc'"),
    ("trainer.devices=0", "trainer.devices must be a positive integer, -1 (every device), auto or a list of "
                          "device indices, got 0"),
    ("trainer.val_check_interval=1.5", "trainer.val_check_interval must be a positive integer (batches), a "
                                       "number > 0 and <= 1 (a fraction of an epoch) or null, got 1.5"),
    ("trainer.deterministic=maybe", "trainer.deterministic must be true, false or warn, got 'maybe'"),
    ("data.limit.test=0", "data.limit.test must be a positive integer or null (the first n files; null: "
                          "all), got 0"),
    ("model.transformer.dropout=1", "model.transformer.dropout must be a number >= 0 and < 1, got 1.0"),
    ("model.optimizer.lr=0", "model.optimizer.lr must be a number > 0 (learning rate), got 0.0"),
    ("vqgan.ckpt_path=[a]", "vqgan.ckpt_path must be a path or null (the VQGAN weights; null: random init), "
                            "got ['a']"),
    ("metrics.fid.features=100", "unknown metrics.fid.features 100; valid: 64, 192, 768, 2048"),
    ("task=paint", "unknown task 'paint'; valid: inpaint, generate, baselines"),
    ("fid=auto", "fid must be true or false (eval.py's metrics.fid.enabled), got 'auto'"),
])
def test_messages(configs, override, message):
    assert _error(_with(configs, override)) == message


@pytest.mark.parametrize("override", [
    "trainer.devices=auto", "trainer.devices=-1", "trainer.devices=[0,1]", "trainer.precision=16",
    "trainer.precision=bf16-mixed", "trainer.max_epochs=null", "trainer.val_check_interval=0.25",
    "trainer.fast_dev_run=true", "trainer.deterministic=warn", "data.limit.train=null",
    "choice_temperature=0", "temperature=2", "sweet_spot=-1", "sweet_spot=8", "vqgan.ckpt_path=null",
    "model.optimizer.lr=1",
    "seed=4294967295"])
def test_good_values_pass(configs, override):
    check_settings(_with(configs, override))


def test_keys_a_config_lacks_are_skipped():
    check_settings(OmegaConf.create({"total_iter": 3, "trainer": {"accelerator": "cpu"}, "ckpt_path": "???"}))
    with pytest.raises(ConfigError, match="^total_iter must"):
        check_settings(OmegaConf.create({"total_iter": "x"}))


# -- the real command lines (started by cli_started): refused before any work, nothing written ----------


@pytest.fixture(scope="module")
def cli_runs(cli_started) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    runs = {}
    for name, (proc, cwd) in cli_started.items():
        stdout, stderr = proc.communicate(timeout=120)
        runs[name] = (subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), cwd)
    return runs


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_the_command_line_refuses_in_one_line_and_writes_nothing(cli_runs, case):
    proc, cwd = cli_runs[case]
    start = CLI_CASES[case][2]
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith(f"error: {start}"), proc.stderr[-2000:]
    assert sorted(p.name for p in cwd.iterdir()) == ["x.ckpt"]  # no logs/, no run folder, no cache
