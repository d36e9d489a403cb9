"""Transformers trained with the lab's code: attention names mapped, then evaluated by eval.py."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import compose_config, eval_overrides

from maskgit.errors import CheckpointError
from maskgit.models.lab_transformer import convert_lab_state_dict, role_of
from maskgit.models.transformer import BidirectionalTransformer
from maskgit.modules.maskgit import MaskGIT
from maskgit.tasks.eval import evaluate

# How lab submissions name the four attention layers (query, key, value, output).
NAMINGS = [
    ("q", "k", "v", "o"),
    ("W_q", "W_k", "W_v", "W_o"),
    ("q_proj", "k_proj", "v_proj", "out_proj"),
    ("to_q", "to_k", "to_v", "to_out"),
    ("Wq", "Wk", "Wv", "Wo"),
    ("linear_q", "linear_k", "linear_v", "linear_out"),
    ("query", "key", "value", "fc_out"),
    ("queries", "keys", "values", "proj"),
    ("query_layer", "key_layer", "value_layer", "combine_heads"),  # the output only by elimination
]
OURS = ("query", "key", "value", "out")
TINY = dict(num_image_tokens=256, num_codebook_vectors=128, dim=32, n_layers=2, hidden_dim=64,
            num_heads=2, dropout=0.0)


def lab_file_content(state: dict[str, torch.Tensor], names: tuple[str, ...], module: str = "Attention"
                     ) -> dict[str, torch.Tensor]:
    """Our state dict with each block's attention renamed the way a lab submission names it."""
    renamed = {}
    for key, value in state.items():
        for ours, theirs in zip(OURS, names, strict=True):
            key = key.replace(f".Attention.{ours}.", f".{module}.{theirs}.")
        renamed[key] = value
    return renamed


@pytest.mark.parametrize("names", NAMINGS, ids=lambda n: "/".join(n))
def test_every_naming_maps_back_to_the_same_weights(names):
    torch.manual_seed(0)
    model = BidirectionalTransformer(**TINY)
    theirs = lab_file_content(model.state_dict(), names, module="attn")
    assert not set(theirs) & {k for k in model.state_dict() if ".Attention." in k}
    converted = convert_lab_state_dict(theirs, num_blocks=2)
    assert converted.keys() == model.state_dict().keys()
    assert all(torch.equal(converted[k], v) for k, v in model.state_dict().items())


def test_roles_read_from_names():
    assert [role_of(n) for n in ("q_proj", "keys", "Wv", "W_o", "outProj", "c_proj", "dense")] == [
        "query", "key", "value", "out", "out", "out", "out"]
    assert role_of("combine_heads") is None and role_of("qk") is None


def test_names_no_rule_reads_need_attention_names():
    torch.manual_seed(0)
    model = BidirectionalTransformer(**TINY)
    names = ("a", "b", "c", "d")
    theirs = lab_file_content(model.state_dict(), names)
    with pytest.raises(CheckpointError, match=r"lab_attention_names=\[q,k,v,o\]") as err:
        convert_lab_state_dict(theirs, num_blocks=2)
    assert "\n" not in str(err.value)
    # The user names them in order (query, key, value, output); a wrong order is not silently accepted.
    converted = convert_lab_state_dict(theirs, num_blocks=2, attention_names=["a", "b", "c", "d"])
    assert all(torch.equal(converted[k], v) for k, v in model.state_dict().items())
    with pytest.raises(CheckpointError, match="do not match"):
        convert_lab_state_dict(theirs, num_blocks=2, attention_names=["a", "b", "c", "x"])


def test_a_block_without_four_linear_layers_is_one_line():
    torch.manual_seed(0)
    state = lab_file_content(BidirectionalTransformer(**TINY).state_dict(), NAMINGS[1])
    state["blocks.1.Attention.extra.weight"] = torch.zeros(32, 32)
    with pytest.raises(CheckpointError, match="block 1: expected four linear") as err:
        convert_lab_state_dict(state, num_blocks=2)
    assert "extra(weight)" in str(err.value) and "\n" not in str(err.value)


def test_whole_lab_maskgit_file_loads_with_equal_logits(tmp_path, tiny_vqgan_path):
    """The lab's whole MaskGit module saved (transformer.* beside vqgan.*), wrapped in a dict."""
    from conftest import TINY_VQGAN

    model_cfg = {"vqgan": {**TINY_VQGAN, "ckpt_path": str(tiny_vqgan_path)},
                 "transformer": {k: v for k, v in TINY.items()}}
    torch.manual_seed(1)
    reference = MaskGIT(**model_cfg).eval()
    state = {f"transformer.{k}": v for k, v in
             lab_file_content(reference.transformer.state_dict(), NAMINGS[2]).items()}
    state.update({f"vqgan.{k}": v for k, v in reference.vqgan.state_dict().items()})
    path = tmp_path / "lab_maskgit.pt"
    torch.save({"model_state_dict": state, "epoch": 7}, path)

    loaded = MaskGIT.from_checkpoint(str(path), lab_model=model_cfg)
    tokens = torch.randint(0, 129, (2, 256))
    with torch.no_grad():
        assert torch.equal(loaded.transformer(tokens), reference.transformer(tokens))

    wrong = {**model_cfg, "transformer": {**TINY, "dim": 64, "hidden_dim": 128}}
    with pytest.raises(CheckpointError, match="shape mismatches"):
        MaskGIT.from_checkpoint(str(path), lab_model=wrong)


def test_eval_py_evaluates_a_lab_file_like_the_checkpoint_it_came_from(
        tmp_path, cache_dir, data_root, trained_ckpt, inception_weights, tiny_vqgan_path):
    """The trained tiny transformer saved as the lab saves it (plain state dict, `W_q...` names):
    eval.py reads it with model=tiny vqgan=tiny and gives the same images and metrics."""
    ckpt = torch.load(trained_ckpt, map_location="cpu", weights_only=True)
    ours = {k[len("transformer."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("transformer.")}
    lab_file = tmp_path / "transformer_epoch_3.pt"
    torch.save(lab_file_content(ours, NAMINGS[1]), lab_file)

    reports = {}
    for name, ckpt_path, extra in [
            ("train_py", trained_ckpt, []),
            ("lab", lab_file, ["model=tiny", "vqgan=tiny", f"vqgan.ckpt_path={tiny_vqgan_path}"])]:
        out = tmp_path / name
        overrides = eval_overrides(ckpt_path, data_root, inception_weights, n_test=8)
        cfg = compose_config("eval", overrides + ["total_iter=3", "metrics.fid.enabled=false"] + extra,
                             out, cache_dir)
        reports[name] = evaluate(cfg)
        assert json.loads((out / "metrics.json").read_text())["metrics"] == reports[name]["metrics"]
    assert reports["lab"]["metrics"] == reports["train_py"]["metrics"]
    assert reports["lab"]["point"]["key"] != reports["train_py"]["point"]["key"]
    for image in sorted((tmp_path / "train_py" / "test_results").glob("*.png")):
        assert image.read_bytes() == (tmp_path / "lab" / "test_results" / image.name).read_bytes()
