"""Generated masks (box, border, free-form) and eval.py on the real test set with them."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import compose_config, eval_overrides

from maskgit.data.images import read_image
from maskgit.data.mask_sources import mask_settings
from maskgit.data.masks import MASK_GENERATORS, generate_masks
from maskgit.decoding.iterative import pixel_to_token_mask
from maskgit.errors import ConfigError, MaskGITError
from maskgit.tasks.eval import evaluate

SHAPES = sorted(MASK_GENERATORS)


@pytest.mark.parametrize("shape", SHAPES)
def test_mask_i_depends_only_on_seed_and_i(shape):
    many = generate_masks(shape, 12, seed=3)
    assert many.shape == (12, 64, 64) and many.dtype == torch.bool
    assert torch.equal(generate_masks(shape, 5, seed=3), many[:5])  # independent of n
    assert torch.equal(generate_masks(shape, [9, 2], seed=3), many[[9, 2]])  # and of order / batching
    assert torch.equal(generate_masks(shape, 12, seed=3), many)
    assert generate_masks(shape, 4, seed=1, size=96).shape == (4, 96, 96)


@pytest.mark.parametrize("shape", ["box", "freeform"])
def test_random_shapes_differ_across_seeds_and_indices(shape):
    a, b = generate_masks(shape, 8, seed=0), generate_masks(shape, 8, seed=1)
    assert not torch.equal(a, b)
    assert len({m.numpy().tobytes() for m in a}) == 8


def test_box_is_one_rectangle_with_area_in_range():
    masks = generate_masks("box", 200, seed=0, area=[0.05, 0.3], aspect=[0.25, 4.0])
    holes = ~masks
    fraction = holes.flatten(1).float().mean(1)
    assert fraction.min() >= 0.05 and fraction.max() <= 0.3
    assert fraction.max() - fraction.min() > 0.15  # the range is used, not one size
    for hole in holes:
        rows, cols = hole.any(1).nonzero().flatten(), hole.any(0).nonzero().flatten()
        box = hole[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        assert box.all() and box.sum() == hole.sum()  # exactly one filled rectangle
    exact = generate_masks("box", 20, seed=0, area=0.25)
    assert ((~exact).flatten(1).sum(1) == 1024).all()


def test_border_keeps_the_centre_and_holes_the_border():
    (known,) = generate_masks("border", 1, width=16)
    assert known[16:48, 16:48].all() and known.sum() == 32 * 32
    assert not known[:16].any() and not known[48:].any() and not known[:, :16].any()
    assert not known[:, 48:].any()
    (right,) = generate_masks("border", 1, width=24, sides=["right"])
    assert right[:, :40].all() and not right[:, 40:].any()
    widths = {int((~m[32]).sum()) for m in generate_masks("border", 40, seed=0, width=[4, 12],
                                                           sides=["left"])}
    assert min(widths) >= 4 and max(widths) <= 12 and len(widths) > 3


def test_freeform_holes_are_strokes_not_empty_not_everything():
    masks = generate_masks("freeform", 100, seed=0)
    holes = (~masks).flatten(1).sum(1)
    assert (holes > 0).all() and (holes < 64 * 64).all()
    thin = generate_masks("freeform", 20, seed=0, strokes=1, vertices=2, width=1)
    assert (~thin).flatten(1).sum(1).float().mean() < holes.float().mean() / 3


@pytest.mark.parametrize("cfg, words", [
    ({"source": "circle"}, ["circle", "dataset", "box", "border", "freeform"]),
    ({"source": "box", "box": {"area": [0.5, 0.2]}}, ["box.area"]),
    ({"source": "box", "box": {"aera": 0.2}}, ["aera", "area"]),
    ({"source": "border", "border": {"width": 40}}, ["border.width"]),
    ({"source": "border", "border": {"sides": ["up"]}}, ["up", "top"]),
    ({"source": "freeform", "seed": -1}, ["masks.seed"]),
])
def test_bad_mask_settings_are_one_line(cfg, words):
    with pytest.raises(ConfigError) as err:
        mask_settings(cfg)
    assert "\n" not in str(err.value) and all(w in str(err.value) for w in words), str(err.value)


def test_mask_settings_keep_only_the_chosen_shape():
    base = {"seed": 2, "box": {"area": [0.1, 0.2]}, "border": {"width": 8}}
    assert mask_settings({**base, "source": "dataset"}) == {"source": "dataset"}
    assert mask_settings({**base, "source": "border"}) == {"source": "border", "seed": 2,
                                                           "params": {"width": 8}}


# -- eval.py with generated masks --------------------------------------------------------------

N = 8


def test_eval_with_box_masks_measures_the_generated_holes(tmp_path, cache_dir, data_root, trained_ckpt,
                                                          inception_weights):
    args = eval_overrides(trained_ckpt, data_root, inception_weights, N) + [
        "total_iter=3", "masks.source=box", "masks.seed=5", "masks.box.area=[0.2,0.3]",
        "metrics.fid.unseen_subset=false", "pictures.num_images=1"]
    report = evaluate(compose_config("eval", args, tmp_path, cache_dir))
    known = generate_masks("box", N, seed=5, area=[0.2, 0.3])

    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["masks"]["source"] == "box" and saved["masks"]["seed"] == 5
    assert saved["masks"]["hole_pixels_mean"] == pytest.approx((~known).sum((1, 2)).float().mean().item())
    assert saved["masks"]["masked_tokens_mean"] == pytest.approx(
        pixel_to_token_mask(known).sum(1).float().mean().item())
    assert saved["num_images"] == N and report["metrics"]["fid"] > 0
    assert sorted(p.name for p in (tmp_path / "pictures").iterdir()) == ["grid.png", "progression_000.png"]

    # hole L1 / PSNR are measured on the generated holes: recompute them from the written results.
    l1, psnr = [], []
    for i in range(N):
        result = read_image(tmp_path / "test_results" / f"image_{i:03d}.png").float() / 255
        truth = read_image(data_root / "gt" / f"image_{i:03d}.png").float() / 255
        hole = ~known[i].expand(3, -1, -1)
        l1.append((result - truth).abs()[hole].mean())
        psnr.append(10 * torch.log10(1 / (result - truth).pow(2)[hole].mean()))
    m = saved["metrics"]
    assert m["hole_l1"] == pytest.approx(torch.stack(l1).mean().item(), rel=1e-4)
    assert m["hole_psnr"] == pytest.approx(torch.stack(psnr).mean().item(), rel=1e-4)
    assert 0 <= m["masked_token_accuracy"] <= 1

    # Another mask shape on the same images is another sweep point and other numbers.
    other = evaluate(compose_config("eval", args + ["masks.source=border", "masks.border.width=8",
                                                    "metrics.fid.enabled=false", "pictures.num_images=0"],
                                    tmp_path / "border", cache_dir))
    assert other["point"]["key"] != report["point"]["key"]
    assert other["masks"]["hole_pixels_mean"] == 4096 - 48 * 48
    assert other["metrics"]["hole_l1"] != m["hole_l1"]


def test_unknown_mask_source_on_eval_is_one_line(tmp_path, cache_dir, data_root, trained_ckpt,
                                                 inception_weights):
    args = eval_overrides(trained_ckpt, data_root, inception_weights, N) + ["masks.source=stars"]
    with pytest.raises(MaskGITError) as err:
        evaluate(compose_config("eval", args, tmp_path, cache_dir))
    assert str(err.value) == ("unknown masks.source 'stars'; valid: dataset, box, border, freeform")
    assert not (tmp_path / "metrics.json").exists()


def test_hidden_ink_masks_hide_that_share_of_each_images_ink():
    from maskgit.data.masks import hidden_share, ink_masks

    images = torch.full((6, 3, 64, 64), 255, dtype=torch.uint8)
    for i, image in enumerate(images):  # a dark stroke on white paper, a different place in each
        image[:, 8 + 4 * i:40 + 4 * i, 20:30] = 0
    first = generate_masks("box", 6, seed=1, area=[0.1, 0.3])
    masks = ink_masks("box", images, (0.3, 0.6), seed=1, area=[0.1, 0.3])
    share = hidden_share(images, masks)
    assert ((share >= 0.3) & (share <= 0.6)).all(), share
    for i in range(6):  # mask i is the first fitting draw of its own generator: the plain mask when it fits
        if 0.3 <= float(hidden_share(images[i:i + 1], first[i:i + 1])) <= 0.6:
            assert torch.equal(masks[i], first[i])
    assert mask_settings({"source": "box", "hidden_ink": [0.25, 0.5]})["hidden_ink"] == [0.25, 0.5]
    assert "hidden_ink" not in mask_settings({"source": "box"})  # other runs' settings (and keys) unchanged
    with pytest.raises(MaskGITError, match="none of 1000"):
        ink_masks("box", images, (0.99, 1.0), seed=1, area=[0.01, 0.02])
    with pytest.raises(ConfigError, match="masks.hidden_ink must satisfy"):
        mask_settings({"source": "box", "hidden_ink": [0.6, 0.2]})
