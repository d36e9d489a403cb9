"""The packaged Inception network is the genuine FID network: torchmetrics' published values.

torchmetrics' docstrings print FID, KID and MIFID for two random image sets drawn after
`torch.manual_seed(42)` (its doctest conftest seeds every example so). Only the genuine
"inception-2015-12-05" weights give those digits; a copy nudged by 0.1% does not.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchmetrics.image.fid import FrechetInceptionDistance, NoTrainInceptionV3
from torchmetrics.image.mifid import MemorizationInformedFrechetInceptionDistance

from maskgit.metrics.inception import CONVERTED_NAME, default_weights
from maskgit.utils.integrity import seal_path


def network(layer: str, weights: Path) -> NoTrainInceptionV3:
    return NoTrainInceptionV3(name="inception-v3-compat", features_list=[layer],
                              feature_extractor_weights_path=str(weights))


# How each docstring builds its metric (FID takes the weights path itself; KID and MIFID take the
# network, which is what `feature=2048` / `feature=64` build inside), and the value it prints.
DOCTESTS = {
    "fid": (lambda w: FrechetInceptionDistance(feature=64, feature_extractor_weights_path=str(w)),
            (12.6388,)),
    "mifid": (lambda w: MemorizationInformedFrechetInceptionDistance(feature=network("64", w)),
              (3003.3691,)),
}


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return default_weights(tmp_path_factory.mktemp("inception"))


def doctest_value(build, weights: Path) -> tuple[float, ...]:
    """The docstring example as torchmetrics runs it, with the network loaded from `weights`."""
    torch.manual_seed(42)
    metric = build(weights)
    metric.update(torch.randint(0, 200, (100, 3, 299, 299), dtype=torch.uint8), real=True)
    metric.update(torch.randint(100, 255, (100, 3, 299, 299), dtype=torch.uint8), real=False)
    value = metric.compute()
    return tuple(round(float(v), 4) for v in (value if isinstance(value, tuple) else (value,)))


# KID's docstring value (0.0312 ± 0.0025) matched too until this 50 s case was dropped; FID and MIFID
# prove the weights.
@pytest.mark.parametrize("name", ["fid", "mifid"])
def test_packaged_weights_reproduce_torchmetrics_published_values(weights, name):
    build, published = DOCTESTS[name]
    assert doctest_value(build, weights) == published


def test_slightly_perturbed_weights_do_not(weights, tmp_path):
    state = torch.load(weights, weights_only=True)
    gen = torch.Generator().manual_seed(0)
    for name, tensor in state.items():
        if name.endswith("conv.weight"):
            tensor.mul_(1 + 1e-3 * torch.randn(tensor.shape, generator=gen))
    perturbed = tmp_path / "perturbed.pth"
    torch.save(state, perturbed)
    build, published = DOCTESTS["fid"]
    assert doctest_value(build, perturbed) != published


def test_conversion_is_cached_and_checked(weights):
    sidecar = seal_path(weights)
    assert weights.name == CONVERTED_NAME and sidecar.is_file()
    stamp = weights.stat().st_mtime_ns
    assert default_weights(weights.parent) == weights and weights.stat().st_mtime_ns == stamp  # reused
    with weights.open("r+b") as f:  # damage it: it is converted again, not trusted
        f.seek(1000)
        f.write(b"\0" * 64)
    assert default_weights(weights.parent) == weights
    assert weights.stat().st_mtime_ns != stamp
    assert doctest_value(*DOCTESTS["fid"][:1], weights) == DOCTESTS["fid"][1]
