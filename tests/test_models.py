"""Compatibility with the lab's networks, checkpoint loading, optimiser groups and MVTM masks.

The lab facts live in $MASKGIT_SHARED_DIR/fixtures (see its README): key lists of the lab's VQGAN
and transformer checkpoints and a behavioural fixture made with the lab's own code. Tests that need
them skip when MASKGIT_SHARED_DIR is unset or not a folder; a folder without the fixtures fails.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from maskgit.data.masks import generate_masks
from maskgit.decoding.iterative import get_schedule, pixel_to_token_mask
from maskgit.errors import CheckpointError, ConfigError
from maskgit.models.checkpoint import build_vqgan
from maskgit.models.transformer import BidirectionalTransformer
from maskgit.models.vqgan import VQGAN
from maskgit.modules.maskgit import MaskGIT, mvtm_mask
from maskgit.training.optim import param_groups, partial_config

ROOT = Path(__file__).resolve().parents[1]
LAB_VQGAN_PARAMS = 70_775_299
LAB_TRANSFORMER_PARAMS = 72_745_472
LAB_DIM, LAB_LAYERS = 768, 15
ATTENTION_LINEARS = ("query", "key", "value", "out")

# conf/vqgan/tiny.yaml without ckpt_path: the lab architecture at its smallest (GroupNorm needs 32k).
TINY_VQGAN = dict(image_channels=3, enc_channels=[32, 32, 32, 64, 64, 64], dec_channels=[32, 32, 64, 64, 64],
                  latent_dim=64, img_resolution=64, latent_resolution=16, num_codebook_vectors=128,
                  beta=0.25)


# -- shared fixtures (fixtures_dir: conftest.py) ----------------------------------------------------
def read_tsv(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """key -> (shape, dtype) from a key<TAB>shape<TAB>dtype file with shapes like 128x3x3x3."""
    lines = path.read_text().splitlines()
    assert lines[0].split("\t") == ["key", "shape", "dtype"], f"{path}: unexpected header {lines[0]!r}"
    table = {}
    for line in lines[1:]:
        if not line.strip():
            continue
        key, shape, dtype = line.split("\t")
        assert key not in table, f"{path}: {key} listed twice"
        table[key] = (tuple(int(n) for n in shape.split("x")) if shape else (), dtype)
    return table


def numel(shape: tuple[int, ...]) -> int:
    return math.prod(shape)


def state_shapes(module: nn.Module) -> dict[str, tuple[tuple[int, ...], str]]:
    return {k: (tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in module.state_dict().items()}


@pytest.fixture(scope="session")
def tiny_fixture(fixtures_dir) -> dict:
    # Tensors, dicts, lists and strings only: it must load without unpickling arbitrary objects.
    return torch.load(fixtures_dir / "lab_vqgan_tiny_fixture.pt", map_location="cpu", weights_only=True)


# -- 1. VQGAN keys and shapes -------------------------------------------------------------------
def test_lab_vqgan_has_exactly_the_lab_checkpoint_keys_and_shapes(fixtures_dir):
    lab = read_tsv(fixtures_dir / "lab_vqgan_state_dict.tsv")
    with torch.device("meta"):  # shapes only: skips initialising 70 M parameters
        ours = state_shapes(VQGAN())

    assert sorted(set(lab) - set(ours)) == [], "keys of the lab checkpoint missing from VQGAN()"
    assert sorted(set(ours) - set(lab)) == [], "keys of VQGAN() that the lab checkpoint lacks"
    wrong = {k: (ours[k], lab[k]) for k in lab if ours[k] != lab[k]}
    assert wrong == {}, "(ours, lab) shape/dtype differ"
    assert len(lab) == 315
    assert sum(numel(shape) for shape, _ in lab.values()) == LAB_VQGAN_PARAMS
    with torch.device("meta"):
        assert sum(p.numel() for p in VQGAN().parameters()) == LAB_VQGAN_PARAMS


# -- 2. behaviour against the lab's own code ----------------------------------------------------
def test_vqgan_reproduces_the_lab_tiny_fixture(tiny_fixture):
    fx = tiny_fixture
    vqgan = VQGAN(**fx["config"])
    vqgan.load_state_dict(fx["state_dict"], strict=True)
    vqgan.eval()

    with torch.no_grad():
        latents = vqgan.latents(fx["images"])
    torch.testing.assert_close(latents, fx["latents"], atol=1e-4, rtol=1e-4)

    sure = fx["margins"] >= 1e-3  # near-ties may flip under another summation order
    assert (~sure).sum() == 14, "the fixture changed: its README counts 14 near-ties"
    for indices in (vqgan.codebook.nearest(fx["latents"]), vqgan.codebook.nearest(latents)):
        assert indices.shape == fx["indices"].shape == (4, 256)
        assert torch.equal(indices[sure], fx["indices"][sure])

    decoded = vqgan.decode_tokens(fx["indices"])
    torch.testing.assert_close(decoded, fx["decoded"], atol=1e-4, rtol=1e-4)


def _group_sizes(vqgan: VQGAN) -> set[tuple[int, int]]:
    return {(m.num_channels, m.num_groups) for m in vqgan.modules() if isinstance(m, nn.GroupNorm)}


def test_norm_groups_sets_every_groupnorm_and_leaves_the_state_dict_alone():
    """The lab's 32 groups by default; fewer keep several channels a group in narrow layers, where
    one channel a group (instance norm) would drop each image's colour. Same keys and shapes."""
    narrow = dict(TINY_VQGAN, enc_channels=[16, 16, 16, 32, 32, 64], dec_channels=[16, 16, 32, 32, 64])
    lab, fewer = VQGAN(**narrow), VQGAN(**narrow, norm_groups=4)
    assert _group_sizes(lab) == {(16, 16), (32, 32), (64, 32)}  # gcd(32, channels)
    assert _group_sizes(fewer) == {(16, 4), (32, 4), (64, 4)}
    assert state_shapes(lab) == state_shapes(fewer)
    assert lab.unsaved_settings == {} and fewer.unsaved_settings == {"norm_groups": 4}

    fewer.load_state_dict(lab.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(lab.eval()(x)[0], fewer.eval()(x)[0])  # the groups change the outputs


# -- 3. transformer keys and shapes -------------------------------------------------------------
def test_lab_transformer_has_the_lab_keys_plus_four_attention_linears_per_block(fixtures_dir):
    lab = read_tsv(fixtures_dir / "lab_transformer_state_dict.tsv")
    with torch.device("meta"):
        model = BidirectionalTransformer()
    ours = state_shapes(model)

    assert sorted(set(lab) - set(ours)) == [], "keys of the lab checkpoint missing"
    wrong = {k: (ours[k], lab[k]) for k in lab if ours[k] != lab[k]}
    assert wrong == {}, "(ours, lab) shape/dtype differ"

    # The lab's attention names vary between submissions; ours are the four linears of each block.
    attention = {}
    for i in range(LAB_LAYERS):
        for name in ATTENTION_LINEARS:
            attention[f"blocks.{i}.Attention.{name}.weight"] = ((LAB_DIM, LAB_DIM), "float32")
            attention[f"blocks.{i}.Attention.{name}.bias"] = ((LAB_DIM,), "float32")
    assert {k: v for k, v in ours.items() if k not in lab} == attention

    from_tables = sum(numel(shape) for shape, _ in [*lab.values(), *attention.values()])
    assert from_tables == LAB_TRANSFORMER_PARAMS
    assert sum(p.numel() for p in model.parameters()) == LAB_TRANSFORMER_PARAMS
    assert not any(isinstance(m, nn.MultiheadAttention) for m in model.modules()), "lab: by hand"


# -- 4. hand-written vs fused attention ---------------------------------------------------------
def small_transformer(**overrides) -> BidirectionalTransformer:
    torch.manual_seed(0)
    kwargs = dict(num_image_tokens=256, num_codebook_vectors=128, dim=64, n_layers=2, hidden_dim=128,
                  num_heads=4, dropout=0.1)
    return BidirectionalTransformer(**{**kwargs, **overrides})


def test_fused_attention_gives_the_hand_written_logits_in_eval_mode(monkeypatch):
    model = small_transformer().eval()
    gen = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, 129, (3, 256), generator=gen)  # 128 is the mask token
    tokens[:, ::3] = model.mask_token_id

    calls = []
    sdpa = F.scaled_dot_product_attention
    monkeypatch.setattr(F, "scaled_dot_product_attention", lambda *a, **k: calls.append(1) or sdpa(*a, **k))
    with torch.no_grad():
        by_hand = model(tokens)
        assert calls == [], "the default attention must be the hand-written one"
        model.set_fused_attention(True)
        fused = model(tokens)
    assert len(calls) == 2, "set_fused_attention(True) must route every block through sdpa"

    assert by_hand.shape == (3, 256, 129)
    torch.testing.assert_close(fused, by_hand, atol=1e-5, rtol=1e-5)

    built_fused = small_transformer(fused_attention=True).eval()  # same seed, same weights
    with torch.no_grad():
        torch.testing.assert_close(built_fused(tokens), by_hand, atol=1e-5, rtol=1e-5)


# -- 5. loading VQGAN checkpoints ---------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(3)
    return VQGAN(**TINY_VQGAN).state_dict()


def one_line_error(config: dict, *fragments: str) -> str:
    with pytest.raises(CheckpointError) as info:
        build_vqgan(config)
    message = str(info.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


def assert_loaded(vqgan: VQGAN, state: dict[str, torch.Tensor]) -> None:
    assert not vqgan.training and not any(m.training for m in vqgan.modules())
    assert not any(p.requires_grad for p in vqgan.parameters())
    loaded = vqgan.state_dict()
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k], state[k]) for k in state)


class LabModule(nn.Module):
    """A Lightning-style training module: its state dict keys carry the `vqgan.` prefix."""

    def __init__(self, discriminator: bool = False):
        super().__init__()
        self.vqgan = VQGAN(**TINY_VQGAN)
        self.discriminator = nn.Conv2d(3, 8, 4) if discriminator else None


@pytest.mark.parametrize("wrapping", ["plain", "state_dict", "lightning", "stage1_module"])
def test_build_vqgan_loads_plain_and_wrapped_state_dicts(tiny_state, tmp_path, wrapping):
    if wrapping == "plain":
        obj = tiny_state  # the lab's VQGAN.pt
    elif wrapping == "state_dict":
        obj = {"state_dict": tiny_state, "epoch": 7}
    else:  # a training module's checkpoint; a stage-1 module also holds its discriminator
        module = LabModule(discriminator=wrapping == "stage1_module")
        module.vqgan.load_state_dict(tiny_state)
        obj = {"epoch": 3, "global_step": 1200, "pytorch-lightning_version": "2.3.0",
               "state_dict": module.state_dict(), "hyper_parameters": {"lr": 2.25e-5}}
        assert any(k.startswith("vqgan.") for k in obj["state_dict"])
    path = tmp_path / "VQGAN.pt"
    torch.save(obj, path)

    vqgan = build_vqgan({**TINY_VQGAN, "ckpt_path": str(path)})
    assert_loaded(vqgan, tiny_state)


def test_build_vqgan_refuses_pickled_objects_without_running_them(tiny_state, tmp_path):
    marker = tmp_path / "code_ran"

    class Trap:  # unpickling it would call os.mkdir(marker)
        def __reduce__(self):
            return os.mkdir, (str(marker),)

    path = tmp_path / "VQGAN.pt"
    torch.save({"state_dict": tiny_state, "trap": Trap()}, path)

    one_line_error({**TINY_VQGAN, "ckpt_path": str(path)}, str(path))
    assert not marker.exists(), "the checkpoint was unpickled with weights_only=False"
    torch.load(path, weights_only=False)  # the trap is live: an unsafe load runs it
    assert marker.exists()


def test_build_vqgan_names_a_missing_file_and_the_setting(tmp_path):
    path = tmp_path / "nowhere" / "VQGAN.pt"
    one_line_error({**TINY_VQGAN, "ckpt_path": str(path)}, str(path), "vqgan.ckpt_path")


@pytest.mark.parametrize("ckpt", [{"ckpt_path": None}, {"ckpt_path": ""}, {}],
                         ids=["none", "empty", "absent"])
def test_build_vqgan_requires_a_checkpoint_path(ckpt):
    one_line_error({**TINY_VQGAN, **ckpt}, "vqgan.ckpt_path")


@pytest.mark.parametrize("change, fragments", [
    ({"num_codebook_vectors": 64}, ["shape mismatch", "codebook.embedding.weight", "(128, 64)", "(64, 64)"]),
    ({"enc_channels": [32, 32, 32, 64, 64, 96]}, ["2 missing keys", "channel_up", "shape mismatch"]),
    ({"latent_dim": 32}, ["shape mismatch", "(128, 64)", "(128, 32)"]),
], ids=["codebook-size", "encoder-channels", "latent-dim"])
def test_build_vqgan_rejects_a_state_dict_of_another_configuration(tiny_state, tmp_path, change, fragments):
    path = tmp_path / "VQGAN.pt"
    torch.save(tiny_state, path)
    one_line_error({**TINY_VQGAN, **change, "ckpt_path": str(path)}, str(path), *fragments)


def test_build_vqgan_names_missing_and_unexpected_keys(tiny_state, tmp_path):
    state = dict(tiny_state)
    del state["quant_conv.weight"]
    state["discriminator.weight"] = torch.zeros(1)
    path = tmp_path / "VQGAN.pt"
    torch.save(state, path)
    message = one_line_error({**TINY_VQGAN, "ckpt_path": str(path)}, "quant_conv.weight",
                             "discriminator.weight")
    assert re.search(r"1 missing", message) and re.search(r"1 unexpected", message), message


# -- 6. AdamW parameter groups ------------------------------------------------------------------
LINEAR_WEIGHT = re.compile(r"blocks\.\d+\.(Attention\.(query|key|value|out)|MLP\.[02])\.weight"
                           r"|Token_Prediction\.0\.weight")


def test_param_groups_decay_exactly_the_linear_weights():
    model = small_transformer()
    groups = param_groups(model, weight_decay=0.05)
    assert [g["weight_decay"] for g in groups] == [0.05, 0.0]
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in groups[0]["params"]}
    kept = {names[id(p)] for p in groups[1]["params"]}

    assert decayed == {n for n in names.values() if LINEAR_WEIGHT.fullmatch(n)}
    assert len(decayed) == 2 * (4 + 2) + 1
    for name in ("tok_emb.weight", "pos_emb", "bias", "LN.weight", "LN.bias", "Token_Prediction.0.bias",
                 "Token_Prediction.2.weight", "blocks.0.LayerNorm1.weight", "blocks.1.LayerNorm2.bias",
                 "blocks.0.Attention.query.bias", "blocks.1.MLP.2.bias"):
        assert name in kept, name

    everything = [id(p) for g in groups for p in g["params"]]
    assert len(everything) == len(set(everything)) == len(list(model.parameters()))


def test_param_groups_leave_out_frozen_parameters():
    model = small_transformer()
    model.pos_emb.requires_grad_(False)
    everything = [id(p) for g in param_groups(model, 0.01) for p in g["params"]]
    trainable = [id(p) for p in model.parameters() if p.requires_grad]
    assert sorted(everything) == sorted(trainable) and id(model.pos_emb) not in everything


def test_param_groups_without_weight_decay_take_the_optimiser_s_own():
    model = small_transformer()
    groups = param_groups(model)
    assert "weight_decay" not in groups[0] and groups[1]["weight_decay"] == 0.0
    optimizer = torch.optim.AdamW(groups, lr=1e-3, weight_decay=0.07)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.07, 0.0]


# -- 6b. the optimiser and the schedule: Hydra partial nodes, recorded as config -----------------------
TINY_TRANSFORMER = dict(num_image_tokens=256, num_codebook_vectors=128, dim=32, n_layers=1, hidden_dim=64,
                        num_heads=2, dropout=0.0)


def lab_nodes(**changes) -> dict:
    """conf/model/lab.yaml's optimizer and scheduler nodes, `changes` ({node: {key: value}}) applied."""
    cfg = OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "model" / "lab.yaml"))
    return {name: {**cfg[name], **changes.get(name, {})} for name in ("optimizer", "scheduler")}


@pytest.fixture
def tiny_vqgan_file(tiny_state, tmp_path) -> dict:
    torch.save(tiny_state, tmp_path / "VQGAN.pt")
    return {**TINY_VQGAN, "ckpt_path": str(tmp_path / "VQGAN.pt")}


def lrs(scheduler, steps: int) -> list[float]:
    out = []
    for _ in range(steps):
        out.append(scheduler.optimizer.param_groups[0]["lr"])
        scheduler.optimizer.step()
        scheduler.step()
    return out


def test_maskgit_builds_the_configured_optimiser_and_schedule(tiny_vqgan_file):
    nodes = lab_nodes(scheduler={"warmup_steps": 4})
    model = MaskGIT(vqgan=tiny_vqgan_file, transformer=TINY_TRANSFORMER,
                    **{k: instantiate(v) for k, v in nodes.items()})  # as train.py's instantiate passes them
    optimizer = model.build_optimizer()
    assert type(optimizer) is torch.optim.AdamW
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.01, 0.0]  # Linear weights only
    assert [g["lr"] for g in optimizer.param_groups] == [1e-4, 1e-4]
    assert list(optimizer.param_groups[0]["betas"]) == [0.9, 0.96]
    got = lrs(model.build_scheduler(optimizer, total_steps=20), 21)
    assert got[:5] == pytest.approx([1e-4 * (1 + 3 * k / 4) / 4 for k in range(5)])  # lr/4 to lr linearly
    assert all(a >= b for a, b in zip(got[4:], got[5:], strict=False))
    assert got[20] == pytest.approx(0.01 * 1e-4)  # cosine down to min_lr_ratio * lr

    # The checkpoint records plain configs (weights_only loads them) that build the same again.
    assert model.hparams["optimizer"] == {"_target_": "torch.optim.adamw.AdamW", "_partial_": True,
                                          "lr": 1e-4, "weight_decay": 0.01, "betas": [0.9, 0.96]}
    assert model.hparams["scheduler"] == {"_target_": "maskgit.training.optim.warmup_cosine",
                                          "_partial_": True, "warmup_steps": 4, "min_lr_ratio": 0.01}
    assert partial_config(instantiate(nodes["optimizer"])) == model.hparams["optimizer"]
    again = MaskGIT(**{**model.hparams, "vqgan": tiny_vqgan_file})
    assert again.hparams == model.hparams
    assert lrs(again.build_scheduler(again.build_optimizer(), 20), 21) == pytest.approx(got)


def test_maskgit_without_an_optimiser_is_for_inference_only(tiny_vqgan_file):
    model = MaskGIT(vqgan=tiny_vqgan_file, transformer=TINY_TRANSFORMER)
    assert model.hparams["optimizer"] is None and model.hparams["scheduler"] is None
    with pytest.raises(ConfigError, match="without model.optimizer"):
        model.build_optimizer()


def old_checkpoint(model: MaskGIT, path: Path, optimizer: dict, scheduler: dict) -> Path:
    """A train.py checkpoint as written before the optimiser and the schedule were Hydra nodes:
    their hyper-parameters plain dicts of values, the rest as now."""
    hparams = {"vqgan": model.hparams["vqgan"], "transformer": model.hparams["transformer"],
               "mvtm": {"masking": "schedule", "mask_func": "cosine", "bernoulli_p": 0.5,
                        "label_smoothing": 0.1}, "optimizer": optimizer, "scheduler": scheduler,
               "compile": False}
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("vqgan.")}
    torch.save({"epoch": 2, "global_step": 48, "pytorch-lightning_version": L.__version__,
                "state_dict": state, "hparams_name": "kwargs", "hyper_parameters": hparams,
                "maskgit_vqgan": model.vqgan_record()}, path)
    return path


@pytest.mark.parametrize("recorded", ["full", "partial"])
def test_a_checkpoint_written_before_the_optimiser_nodes_still_loads(tiny_vqgan_file, tmp_path, recorded):
    torch.manual_seed(4)
    trained = MaskGIT(vqgan=tiny_vqgan_file, transformer=TINY_TRANSFORMER)
    if recorded == "full":  # what conf/model/*.yaml made train.py record
        optimizer, scheduler = {"lr": 3e-3, "weight_decay": 0.02, "betas": [0.9, 0.96]}, \
            {"warmup_steps": 4, "min_lr_ratio": 0.01}
    else:  # keys left out took the code's defaults of then
        optimizer, scheduler = {"lr": 3e-3}, {"warmup_steps": 4}
    path = old_checkpoint(trained, tmp_path / "old.ckpt", optimizer, scheduler)

    for model in (MaskGIT.from_checkpoint(str(path)),  # eval.py's loader
                  MaskGIT.load_from_checkpoint(path, map_location="cpu")):  # Lightning's
        assert all(torch.equal(a, b) for a, b in zip(model.transformer.state_dict().values(),
                                                     trained.transformer.state_dict().values(), strict=True))
        assert model.hparams["optimizer"]["_target_"] == "torch.optim.AdamW"  # now in the new format
        opt = model.build_optimizer()
        assert type(opt) is torch.optim.AdamW and opt.param_groups[0]["lr"] == 3e-3
        assert [g["weight_decay"] for g in opt.param_groups] == [0.02 if recorded == "full" else 0.01, 0.0]
        assert list(opt.param_groups[0]["betas"]) == [0.9, 0.96]
        got = lrs(model.build_scheduler(opt, total_steps=10), 11)
        assert max(got) == pytest.approx(3e-3) and got.index(max(got)) == 4
        assert got[10] == pytest.approx((0.01 if recorded == "full" else 0.0) * 3e-3, abs=1e-12)


# -- 7. MVTM masks ------------------------------------------------------------------------------
@pytest.mark.parametrize("mask_func", ["cosine", "linear", "square"])
def test_schedule_masking_masks_ceil_gamma_r_tokens_per_row(mask_func):
    batch, length = 64, 256
    masked = mvtm_mask(batch, length, masking="schedule", mask_func=mask_func, bernoulli_p=0.5,
                       generator=torch.Generator().manual_seed(5), device=torch.device("cpu"))
    assert masked.dtype == torch.bool and masked.shape == (batch, length)

    # r ~ U(0,1) per row is the generator's first draw: recompute it from the same seed.
    r = torch.rand(batch, generator=torch.Generator().manual_seed(5))
    expected = torch.ceil(get_schedule(mask_func)(r) * length).long()
    assert torch.equal(masked.sum(1), expected)
    assert len(set(masked.sum(1).tolist())) > batch // 2, "the count must vary with r"

    again = mvtm_mask(batch, length, masking="schedule", mask_func=mask_func, bernoulli_p=0.5,
                      generator=torch.Generator().manual_seed(5), device=torch.device("cpu"))
    assert torch.equal(masked, again)


@pytest.mark.parametrize("mask_func, mean", [("cosine", 2 / math.pi), ("linear", 0.5), ("square", 2 / 3)])
def test_schedule_masking_follows_the_schedule_on_average_at_random_positions(mask_func, mean):
    batch, length = 4000, 256
    masked = mvtm_mask(batch, length, masking="schedule", mask_func=mask_func, bernoulli_p=0.5,
                       generator=torch.Generator().manual_seed(11), device=torch.device("cpu"))
    fraction = masked.float().mean(1)
    # E[ceil(gamma(r) L)] / L = E[gamma(r)] + ~0.5 / L; the standard error is about 0.005.
    assert abs(fraction.mean().item() - (mean + 0.5 / length)) < 0.02
    assert fraction.min() > 0 and fraction.max() <= 1
    per_position = masked.float().mean(0)  # positions are drawn uniformly, not a fixed block
    assert (per_position - fraction.mean()).abs().max() < 0.05


def test_mask_ratio_range_bounds_the_masked_fraction():
    """linear with r ~ U(0, 0.75): the masked fraction is ~ U(0.25, 1) (the lab's best recipe)."""
    masked = mvtm_mask(4000, 256, masking="schedule", mask_func="linear", bernoulli_p=0.5,
                       generator=torch.Generator().manual_seed(3), device=torch.device("cpu"),
                       r_max=0.75)
    fraction = masked.float().mean(1)
    assert fraction.min() >= 0.25 and fraction.max() <= 1
    assert abs(fraction.mean().item() - 0.625) < 0.02


def test_region_masking_masks_ceil_gamma_r_of_one_generated_hole():
    """regions.prob=1: each row's candidates are the tokens of one free-form hole (the pixel-mask
    generator's, recomputed here from the same draws), ceil(gamma(r) * N_hole) of them masked."""
    batch, regions = 32, {"prob": 1.0, "shape": "freeform", "params": {"width": [6, 12]}}
    masked = mvtm_mask(batch, 256, masking="schedule", mask_func="cosine", bernoulli_p=0.5,
                       generator=torch.Generator().manual_seed(8), device=torch.device("cpu"),
                       regions=regions)
    g = torch.Generator().manual_seed(8)
    r = torch.rand(batch, generator=g)
    assert (torch.rand(batch, generator=g) < 1).all()
    seed = int(torch.randint(2**62, (1,), generator=g))
    holes = pixel_to_token_mask(generate_masks("freeform", batch, seed=seed, size=64, width=[6, 12]))
    assert not (masked & ~holes).any()  # nothing outside the hole
    expected = torch.ceil(get_schedule("cosine")(r) * holes.sum(1)).clamp_min(1).long()
    assert torch.equal(masked.sum(1), expected)
    assert holes.sum(1).float().mean() < 200  # the holes are regions, not the whole grid
    mixed = mvtm_mask(400, 256, masking="schedule", mask_func="cosine", bernoulli_p=0.5,
                      generator=torch.Generator().manual_seed(8), device=torch.device("cpu"),
                      regions={**regions, "prob": 0.5})
    grid = mixed.view(400, 16, 16)
    whole_grid = (grid.any(2).sum(1) == 16) & (grid.any(1).sum(1) == 16)  # rows and columns all hit
    assert 0.2 < whole_grid.float().mean() < 0.8


@pytest.mark.parametrize("p", [0.15, 0.5])
def test_bernoulli_masking_masks_each_token_with_probability_p(p):
    masked = mvtm_mask(1000, 256, masking="bernoulli", mask_func="cosine", bernoulli_p=p,
                       generator=torch.Generator().manual_seed(2), device=torch.device("cpu"))
    assert masked.dtype == torch.bool and masked.shape == (1000, 256)
    assert abs(masked.float().mean().item() - p) < 0.005  # 256,000 draws: standard error < 0.001
    assert masked.float().mean(1).std() > 0  # independent per token, not a fixed count per row


def test_unknown_masking_is_a_config_error():
    with pytest.raises(ConfigError, match="bernoulli, schedule"):
        mvtm_mask(2, 256, masking="random", mask_func="cosine", bernoulli_p=0.5, generator=None,
                  device=torch.device("cpu"))


def test_a_checkpoint_naming_the_schedule_by_its_old_module_still_loads(tiny_vqgan_file, tmp_path):
    """Checkpoints written before `maskgit.optim` moved to `maskgit.training.optim` name it so."""
    torch.manual_seed(5)
    trained = MaskGIT(vqgan=tiny_vqgan_file, transformer=TINY_TRANSFORMER)
    path = old_checkpoint(trained, tmp_path / "old.ckpt",
                          {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 2e-3},
                          {"_target_": "maskgit.optim.warmup_cosine", "_partial_": True, "warmup_steps": 2,
                           "min_lr_ratio": 0.0})
    model = MaskGIT.from_checkpoint(str(path))
    assert model.hparams["scheduler"]["_target_"] == "maskgit.training.optim.warmup_cosine"
    got = lrs(model.build_scheduler(model.build_optimizer(), total_steps=6), 7)
    assert max(got) == pytest.approx(2e-3) and got[6] == pytest.approx(0.0, abs=1e-12)
