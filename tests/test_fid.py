"""FID, its interval and KID from per-image Inception features, and the reference feature cache.

The network is the genuine one (tests/test_inception.py proves it); the equality tests hold our
formulas to torch-fidelity's and torchmetrics' own on the same features or images.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.inception import make_inception_weights
from PIL import Image
from test_integrity import corrupt
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
from torchmetrics.image.fid import FrechetInceptionDistance

from maskgit.errors import ConfigError
from maskgit.metrics.fid import (
    FeatureBank,
    FIDSettings,
    InceptionExtractor,
    fid_interval,
    frechet_distance,
    kernel_inception_distance,
    reference_features,
    score,
)
from maskgit.utils.integrity import damage


@pytest.fixture(scope="module")
def net64(inception_weights) -> InceptionExtractor:
    return InceptionExtractor(FIDSettings(weights_path=str(inception_weights), features=64))


def cat_images(folder: str, n: int) -> torch.Tensor:
    root = os.environ.get("MASKGIT_DATA_ROOT")
    if not root:
        pytest.skip("MASKGIT_DATA_ROOT is not set: no cat_face data set to read real images from")
    files = [Path(root) / folder / f"image_{i:03d}.png" for i in range(n)]
    arrays = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def features(n: int, d: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    """n draws of one d-dimensional correlated distribution (moved by `shift`)."""
    mix = torch.randn(d, d, generator=torch.Generator().manual_seed(1234), dtype=torch.float64) / d**0.5
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=gen, dtype=torch.float64) @ mix + shift


@pytest.mark.parametrize(("n_a", "n_b", "d"), [(40, 30, 192), (500, 300, 64), (50, 400, 64)])
def test_frechet_distance_equals_torch_fidelitys(n_a, n_b, d):
    a, b = features(n_a, d, 0), features(n_b, d, 1, shift=0.3)
    theirs = fid_statistics_to_metric(fid_features_to_statistics(a), fid_features_to_statistics(b), False)
    assert frechet_distance(a, b) == pytest.approx(theirs["frechet_inception_distance"], rel=1e-6)


@pytest.mark.parametrize("layer", [64, pytest.param(2048, marks=pytest.mark.slow)])
def test_fid_of_real_cat_images_equals_torchmetrics(inception_weights, layer):
    """The same images through our features and through torchmetrics' FrechetInceptionDistance."""
    real, fake = cat_images("gt", 24), cat_images("masked_image", 24)
    theirs = FrechetInceptionDistance(feature=layer, feature_extractor_weights_path=str(inception_weights),
                                      antialias=False)  # torch-fidelity's TF1-style resize
    theirs.update(real, real=True)
    theirs.update(fake, real=False)
    net = InceptionExtractor(FIDSettings(weights_path=str(inception_weights), features=layer))
    ours = frechet_distance(net(fake), net(real))
    assert ours > 0 and ours == pytest.approx(theirs.compute().item(), rel=1e-3)


def test_the_two_resizes_differ_slightly(inception_weights):
    images = cat_images("gt", 8)
    path = str(inception_weights)
    tf, lab = (InceptionExtractor(FIDSettings(weights_path=path, features=64, resize=r))(images)
               for r in ("torch-fidelity", "lab"))
    assert not torch.equal(tf, lab)
    assert torch.allclose(tf, lab, rtol=0.1, atol=0.05)


def test_interval_surrounds_the_fid_and_narrows_with_more_images():
    widths = []
    for n in (50, 400):
        a, b = features(n, 32, 0), features(n, 32, 1, shift=0.2)
        fid = frechet_distance(a, b)
        lo, hi = fid_interval(a, b, fid, paired=False, replicates=60, seed=0)
        assert lo < fid < hi
        assert (lo, hi) == fid_interval(a, b, fid, paired=False, replicates=60, seed=0)  # seeded
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 2


def test_kid_is_near_zero_for_one_distribution_and_positive_for_two():
    a, b, c = features(300, 64, 0), features(300, 64, 1), features(300, 64, 2, shift=0.5)
    same_mean, same_std = kernel_inception_distance(a, b, subsets=20, seed=0)
    diff_mean, diff_std = kernel_inception_distance(a, c, subsets=20, seed=0)
    assert abs(same_mean) < 3 * same_std + 1e-3
    assert diff_mean > 10 * diff_std > 0


def test_score_names_every_metric_and_refuses_too_few_images():
    a, b = features(30, 16, 0), features(30, 16, 1)
    out = score(a, b, FIDSettings(features=64, bootstrap=10, kid_subsets=5), paired=True, prefix="fid_unseen")
    assert set(out) == {"fid_unseen", "fid_unseen_ci95_low", "fid_unseen_ci95_high", "kid_unseen_mean",
                        "kid_unseen_std"}
    with pytest.raises(ConfigError, match="at least 2 images"):
        score(a[:1], b, FIDSettings(), paired=False)


def test_feature_bank_returns_features_in_index_order(net64):
    images = cat_images("gt", 6)
    bank = FeatureBank(net64)
    bank.update(images[3:], torch.tensor([3, 4, 5]))
    bank.update(images[:3], torch.tensor([0, 1, 2]))
    index, feats = bank.compute()
    assert index.tolist() == list(range(6))
    assert torch.allclose(feats, net64(images))


def count_calls(batches: list[torch.Tensor]):
    calls = []

    def images_fn():
        calls.append(1)
        return iter(batches)

    return images_fn, calls


def test_reference_features_are_computed_once_then_loaded(net64, tmp_path):
    images = cat_images("gt", 4)
    images_fn, calls = count_calls([images[:2], images[2:]])
    first = reference_features(net64, images_fn, data_digest="a", cache_dir=tmp_path)
    assert len(calls) == 1 and first.shape == (4, 64)
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".lock", ".pt", ".seal"]  # no temporary file left
    assert torch.equal(reference_features(net64, images_fn, data_digest="a", cache_dir=tmp_path), first)
    assert len(calls) == 1  # loaded, not recomputed
    reference_features(net64, images_fn, data_digest="b", cache_dir=tmp_path)  # another reference set
    assert len(calls) == 2 and len(list(tmp_path.glob("*.pt"))) == 2


@pytest.mark.parametrize("how", ["truncated", "zeroed", "unsealed"])
def test_damaged_reference_features_are_computed_again(net64, tmp_path, how):
    images_fn, calls = count_calls([cat_images("gt", 2)])
    first = reference_features(net64, images_fn, data_digest="d", cache_dir=tmp_path)
    (path,) = tmp_path.glob("*.pt")
    corrupt(path, how)
    assert torch.equal(reference_features(net64, images_fn, data_digest="d", cache_dir=tmp_path), first)
    assert len(calls) == 2 and damage(path) is None  # computed again and sealed


def test_other_weights_or_resize_recompute_the_reference(net64, tmp_path):
    images_fn, calls = count_calls([cat_images("gt", 2)])
    other = make_inception_weights(tmp_path / "random.pth", seed=1)
    nets = [net64, InceptionExtractor(FIDSettings(weights_path=str(other), features=64)),
            InceptionExtractor(FIDSettings(weights_path=net64.weights_path, features=64, resize="lab"))]
    for net in nets:
        reference_features(net, images_fn, data_digest="d", cache_dir=tmp_path / "cache")
    assert len(calls) == 3 and len(list((tmp_path / "cache").glob("*.pt"))) == 3


def test_an_interrupted_cache_write_leaves_no_cache_file(net64, tmp_path, monkeypatch):
    images_fn, calls = count_calls([cat_images("gt", 1)])
    real_save = torch.save

    def dies_halfway(obj, f):
        Path(f).write_bytes(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        reference_features(net64, images_fn, data_digest="d", cache_dir=tmp_path)
    assert [p.suffix for p in tmp_path.iterdir()] == [".lock"]  # only the cache's empty lock file
    monkeypatch.setattr(torch, "save", real_save)
    reference_features(net64, images_fn, data_digest="d", cache_dir=tmp_path)
    assert len(calls) == 2  # nothing half-written was mistaken for a cache


def test_missing_weights_file_is_a_one_line_config_error(tmp_path):
    missing = tmp_path / "nowhere" / "pt_inception-2015-12-05-6726825d.pth"
    with pytest.raises(ConfigError) as err:
        InceptionExtractor(FIDSettings(weights_path=str(missing)))
    message = str(err.value)
    assert "metrics.fid.weights_path" in message and str(missing) in message and "\n" not in message


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(lambda p: p.write_text("not weights"), id="text"),
        pytest.param(lambda p: torch.save({"fc.weight": torch.zeros(3)}, p), id="other-state-dict"),
    ],
)
def test_a_file_that_is_not_inception_weights_is_a_one_line_config_error(tmp_path, content):
    path = tmp_path / "weights.pth"
    content(path)
    with pytest.raises(ConfigError) as err:
        InceptionExtractor(FIDSettings(weights_path=str(path)))
    assert "metrics.fid.weights_path" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("bad", [{"features": 100}, {"resize": "nearest"}, {"bootstrap": -1}])
def test_bad_fid_settings_are_one_line_errors(bad):
    with pytest.raises(ConfigError, match="metrics.fid"):
        FIDSettings(**bad)
