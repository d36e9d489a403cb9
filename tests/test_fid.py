"""FID: torchmetrics on torch-fidelity's InceptionV3, loaded from a weights file, and its cache.

The weights are random but in torch-fidelity's exact format (tests/helpers/inception.py), so every
test goes through the real loading path; the numbers are not comparable with published FIDs.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.inception import make_inception_weights
from PIL import Image
from scipy import linalg
from torch_fidelity import feature_extractor_inceptionv3 as tf_inception

from maskgit.errors import ConfigError
from maskgit.metrics.fid import (
    REAL_STATES,
    build_fid,
    extractor_digest,
    load_or_compute_reference,
)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return make_inception_weights(tmp_path_factory.mktemp("inception") / "inception.pth")


def random_images(n: int, seed: int, low: int = 0, high: int = 256) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(low, high, (n, 3, 64, 64), dtype=torch.uint8, generator=gen)


def cat_images(folder: str, n: int) -> torch.Tensor:
    root = os.environ.get("MASKGIT_DATA_ROOT")
    if not root:
        pytest.skip("MASKGIT_DATA_ROOT is not set: no cat_face data set to read real images from")
    files = [Path(root) / folder / f"image_{i:03d}.png" for i in range(n)]
    arrays = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def scipy_fid(real: np.ndarray, fake: np.ndarray) -> float:
    """pytorch-fid's FID formula in float64 with scipy's sqrtm, taken on n x n instead of d x d.

    With centred features X1 (n1 x d) and S1 = X1'X1 / (n1 - 1), the non-zero eigenvalues of S1 S2
    are those of X1 S2 X1' / (n1 - 1), so both square roots have the same trace; the small matrix is
    symmetric and well-conditioned, the 2048 x 2048 one singular and a minute of CPU.
    """
    mu1, mu2 = real.mean(0), fake.mean(0)
    s1, s2 = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    x1 = real - mu1
    covmean = linalg.sqrtm(x1 @ s2 @ x1.T / (len(real) - 1))
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean.real))


def count_calls(batches: list[torch.Tensor]):
    calls = []

    def images_fn():
        calls.append(1)
        return iter(batches)

    return images_fn, calls


@pytest.mark.slow  # torchmetrics' compute() eigendecomposes a 2048 x 2048 matrix: ~15-40 s on CPU
@pytest.mark.parametrize(
    ("images", "n_features"),
    [
        # two overlapping intensity ranges, as in torchmetrics' own example; the 192-d layer
        pytest.param(lambda: (random_images(10, 0, 0, 200), random_images(10, 1, 60, 256)), 192,
                     id="random-192"),
        # the standard 2048-d FID on real cat faces
        pytest.param(lambda: (cat_images("gt", 20), cat_images("masked_image", 20)), 2048,
                     id="cat-gt-vs-masked-2048"),
    ],
)
def test_fid_from_the_cached_reference_equals_scipy_on_the_same_features(weights, tmp_path, images,
                                                                         n_features):
    real, fake = images()
    images_fn, calls = count_calls(list(real.split(5)))
    args = dict(data_digest="gt", weights_path=weights, cache_dir=tmp_path)
    features: list[torch.Tensor] = []

    def build_fid_with_feature_tap():
        fid = build_fid(weights, n_features)
        fid.inception.register_forward_hook(lambda _m, _i, out: features.append(out.double()))
        return fid

    load_or_compute_reference(build_fid_with_feature_tap(), images_fn, **args)
    fid = build_fid_with_feature_tap()
    load_or_compute_reference(fid, images_fn, **args)
    assert len(calls) == 1  # the metric that is computed got its reference from the cache
    fid.update(fake, real=False)
    ours = fid.compute().item()

    real_f, fake_f = torch.cat(features[:-1]).numpy(), features[-1].numpy()
    assert real_f.shape == (len(real), n_features) and fake_f.shape == (len(fake), n_features)
    # random weights still give features that differ from image to image
    assert real_f.std(0).mean() > 1e-3 and fake_f.std(0).mean() > 1e-3
    assert ours > 0
    assert ours == pytest.approx(scipy_fid(real_f, fake_f), rel=1e-3)


def test_reference_stats_are_computed_once_then_loaded(weights, tmp_path):
    real = [random_images(1, 10), random_images(1, 11)]
    images_fn, calls = count_calls(real)
    args = dict(data_digest="gt-digest-a", weights_path=weights, cache_dir=tmp_path)

    first = build_fid(weights)
    cache = load_or_compute_reference(first, images_fn, **args)
    assert len(calls) == 1 and cache.is_file() and cache.parent == tmp_path
    assert [p.name for p in tmp_path.iterdir()] == [cache.name]  # no temporary file left behind
    assert first.real_features_num_samples.item() == 2

    second = build_fid(weights)
    assert load_or_compute_reference(second, images_fn, **args) == cache
    assert len(calls) == 1  # loaded, not recomputed
    for name in REAL_STATES:
        assert torch.equal(getattr(second, name), getattr(first, name))

    # a different reference set (e.g. the 177-image subset) has its own cache file
    other = load_or_compute_reference(build_fid(weights), images_fn, **args | {"data_digest": "b"})
    assert len(calls) == 2 and other != cache and other.is_file()


def test_changed_weights_recompute_the_reference(weights, tmp_path):
    images_fn, calls = count_calls([random_images(1, 20)])
    other_weights = make_inception_weights(tmp_path / "other.pth", seed=1)
    caches = {
        load_or_compute_reference(
            build_fid(w), images_fn, data_digest="d", weights_path=w, cache_dir=tmp_path / "cache"
        )
        for w in (weights, other_weights)
    }
    assert len(calls) == 2 and len(caches) == 2


def test_an_interrupted_cache_write_leaves_no_cache_file(weights, tmp_path, monkeypatch):
    images_fn, calls = count_calls([random_images(1, 30)])
    args = dict(data_digest="d", weights_path=weights, cache_dir=tmp_path)
    real_save = torch.save

    def dies_halfway(obj, f):
        Path(f).write_bytes(b"half a file")
        raise KeyboardInterrupt

    fid = build_fid(weights)
    monkeypatch.setattr(torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        load_or_compute_reference(fid, images_fn, **args)
    assert list(tmp_path.iterdir()) == []

    monkeypatch.setattr(torch, "save", real_save)
    load_or_compute_reference(fid, images_fn, **args)
    assert len(calls) == 2  # nothing half-written was mistaken for a cache


def test_only_rank_zero_holds_the_reference_stats(weights, tmp_path):
    images_fn, calls = count_calls([random_images(1, 40)])
    args = dict(data_digest="d", weights_path=weights, cache_dir=tmp_path)
    load_or_compute_reference(build_fid(weights), images_fn, **args, rank=0)

    fid = build_fid(weights)
    fid.update(random_images(1, 41), real=True)  # stale real stats are cleared as well
    assert load_or_compute_reference(fid, images_fn, **args, rank=1) is None
    assert len(calls) == 1
    for name in REAL_STATES:
        assert not getattr(fid, name).any()
    assert fid.real_features_sum.dtype == torch.float64


def test_missing_weights_file_is_a_one_line_config_error(tmp_path):
    missing = tmp_path / "nowhere" / "pt_inception-2015-12-05-6726825d.pth"
    with pytest.raises(ConfigError) as err:
        build_fid(missing)
    message = str(err.value)
    assert "metrics.fid.weights_path" in message and str(missing) in message
    assert "\n" not in message


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
        build_fid(path)
    message = str(err.value)
    assert "metrics.fid.weights_path" in message and "\n" not in message


def test_no_weights_offline_is_a_clear_config_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty hub: nothing cached
    # nothing listens on the discard port, so the download fails at once instead of hanging
    name = os.path.basename(tf_inception.URL_INCEPTION_V3)
    monkeypatch.setattr(tf_inception, "URL_INCEPTION_V3", f"http://127.0.0.1:9/{name}")
    with pytest.raises(ConfigError) as err:
        build_fid(None)
    message = str(err.value)
    assert message.startswith("FID needs the Inception weights")
    assert "metrics.fid.weights_path=" in message and "metrics.fid.enabled=false" in message
    assert "\n" not in message


def test_downloaded_weights_are_keyed_by_their_content(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert extractor_digest(None).startswith("torch-fidelity-default:weights-inception")
    cached = tmp_path / "hub" / "checkpoints" / os.path.basename(tf_inception.URL_INCEPTION_V3)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"one")
    one = extractor_digest(None)
    cached.write_bytes(b"two")
    assert one.startswith("torch-fidelity-default:") and extractor_digest(None) != one
