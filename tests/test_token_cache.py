"""The token cache: encode once, reuse across runs, rebuild on any change, never half-written."""

from __future__ import annotations

import logging

import pytest
import torch
from conftest import TINY_VQGAN
from test_integrity import corrupt

from maskgit.data.images import LAB_TEST, LAB_TRAIN
from maskgit.data.layout import scan_layout
from maskgit.data.token_cache import TokenCache, load_images
from maskgit.models.vqgan import VQGAN
from maskgit.utils.integrity import damage


@pytest.fixture(scope="module")
def files(data_root):
    return scan_layout(data_root, splits=("train",), check_images=False, limit={"train": 40}).train_files


@pytest.fixture
def vqgan():
    torch.manual_seed(0)
    return VQGAN(**TINY_VQGAN).eval()


def test_tokens_equal_direct_encoding_and_are_reused(tmp_path, files, vqgan):
    cache = TokenCache(tmp_path)
    tokens = cache.tokens("train", vqgan, files, LAB_TRAIN, batch_size=16)
    assert tokens.shape == (40, 256) and tokens.dtype == torch.int64
    assert torch.equal(tokens, vqgan.tokenize(load_images(files, LAB_TRAIN)))

    (path,) = tmp_path.glob("train-*.pt")
    stamp = path.stat().st_mtime_ns
    again = TokenCache(tmp_path).tokens("train", vqgan, files, LAB_TRAIN)  # e.g. another process
    assert torch.equal(again, tokens) and path.stat().st_mtime_ns == stamp


def test_cache_is_rebuilt_when_weights_files_or_normalisation_change(tmp_path, files, vqgan):
    cache = TokenCache(tmp_path)
    base = cache.path_for("train", vqgan, files, LAB_TRAIN)
    assert cache.path_for("train", vqgan, files[:-1], LAB_TRAIN) != base
    assert cache.path_for("train", vqgan, files, LAB_TEST) != base
    torch.manual_seed(1)
    other = VQGAN(**TINY_VQGAN).eval()
    assert cache.path_for("train", other, files, LAB_TRAIN) != base
    same = VQGAN(**TINY_VQGAN).eval()
    same.load_state_dict(vqgan.state_dict())
    assert cache.path_for("train", same, files, LAB_TRAIN) == base  # keyed by content, not identity
    regrouped = VQGAN(**TINY_VQGAN, norm_groups=8).eval()  # same weights, other outputs
    regrouped.load_state_dict(vqgan.state_dict())
    assert cache.path_for("train", regrouped, files, LAB_TRAIN) != base


@pytest.mark.parametrize("how", ["truncated", "empty", "zeroed", "unsealed"])
def test_a_damaged_cache_is_named_and_encoded_again(tmp_path, files, vqgan, how, caplog):
    cache = TokenCache(tmp_path)
    tokens = cache.tokens("train", vqgan, files, LAB_TRAIN, batch_size=16)
    (path,) = tmp_path.glob("train-*.pt")
    corrupt(path, how)  # zeroed: 64 bytes inside the tokens, which would load without error
    with caplog.at_level(logging.WARNING):
        assert torch.equal(cache.tokens("train", vqgan, files, LAB_TRAIN, batch_size=16), tokens)
    assert f"rebuilding token cache {path}" in caplog.text and damage(path) is None


def test_an_interrupted_encoding_leaves_no_cache_file(tmp_path, files, vqgan, monkeypatch):
    real = vqgan.tokenize
    batches = []

    def dies_on_third_batch(x):
        batches.append(len(x))
        if len(batches) == 3:
            raise KeyboardInterrupt  # like Ctrl-C in the middle of encoding
        return real(x)

    monkeypatch.setattr(vqgan, "tokenize", dies_on_third_batch)
    with pytest.raises(KeyboardInterrupt):
        TokenCache(tmp_path).tokens("train", vqgan, files, LAB_TRAIN, batch_size=8)
    # neither a cache file nor a temporary left behind; only the (empty) lock file beside the cache
    assert [p.suffix for p in tmp_path.iterdir()] in ([], [".lock"])
