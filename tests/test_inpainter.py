"""The Python API (`from maskgit import Inpainter`): eval.py's results without Hydra, and bad input."""

from __future__ import annotations

import pytest
import torch
from conftest import compose_config, eval_overrides

from maskgit import Inpainter
from maskgit.data.images import read_image, read_mask
from maskgit.data.layout import scan_layout
from maskgit.errors import ConfigError
from maskgit.tasks.eval import evaluate

N = 8


@pytest.fixture(scope="module")
def painter(trained_ckpt) -> Inpainter:
    return Inpainter.from_checkpoint(trained_ckpt, device="cpu", batch_size=3)  # batches of 3: 3 + 3 + 2


@pytest.fixture(scope="module")
def test_images(data_root) -> tuple[torch.Tensor, torch.Tensor]:
    layout = scan_layout(str(data_root), splits=("test",), check_images=False, limit={"test": N})
    return (torch.stack([read_image(f) for f in layout.test_files]),
            torch.stack([read_mask(f) for f in layout.mask_files]))


@pytest.mark.parametrize("extra", [[], ["decoding=quickstart", "total_iter=5", "sweet_spot=3"]])
def test_inpaint_gives_eval_pys_images(tmp_path, cache_dir, data_root, trained_ckpt, inception_weights,
                                       painter, test_images, extra):
    cfg = compose_config("eval", eval_overrides(trained_ckpt, data_root, inception_weights, N)
                         + ["metrics.fid.enabled=false", *extra], tmp_path, cache_dir)
    evaluate(cfg)
    images, known = test_images
    preset = "quickstart" if extra else "lab"
    overrides = {"total_iter": 5, "sweet_spot": 3} if extra else {}
    out = painter.inpaint(images, known, preset=preset, temperature=1.0, **overrides)
    assert out.shape == (N, 3, 64, 64) and out.dtype == torch.uint8
    for i in range(N):
        assert torch.equal(out[i], read_image(tmp_path / "test_results" / f"image_{i:03d}.png")), i
    if extra:  # composite (the quickstart preset): the known pixels are the input's
        assert torch.equal(out.permute(1, 0, 2, 3)[:, known], images.permute(1, 0, 2, 3)[:, known])


def test_inpaint_takes_the_labs_0_255_masks_and_any_batch(painter, test_images):
    images, known = test_images
    whole = painter.inpaint(images, known)
    assert torch.equal(painter.inpaint(images, known.to(torch.uint8) * 255), whole)
    # a batch of the same size gives the same bytes (the convolutions' float sums depend on the batch
    # size on a CPU, so a lone image may differ in a last bit); any count works
    assert torch.equal(painter.inpaint(images[:3], known[:3].long()), whole[:3])
    assert painter.inpaint(images[:1], known[:1]).shape == (1, 3, 64, 64)


def test_generate_unconditional(painter):
    samples = painter.generate(4, total_iter=3)
    assert samples.shape == (4, 3, 64, 64) and samples.dtype == torch.uint8
    assert not torch.equal(samples[0], samples[1])
    assert torch.equal(painter.generate(4, total_iter=3), samples)  # seeded
    with pytest.raises(ConfigError, match="class-conditional"):
        painter.generate(2, classes=[0])


@pytest.mark.parametrize(("make", "message"), [
    (lambda im, k: (im[:, :, :32], k),
     r"^images must be uint8 \(B, 3, 64, 64\), got torch.uint8 \(8, 3, 32, 64\)$"),
    (lambda im, k: (im.float(), k), r"^images must be uint8 \(B, 3, 64, 64\), got torch.float32"),
    (lambda im, k: (im, k[:3]), r"^masks must be \(8, 64, 64\) for 8 images, got \(3, 64, 64\)$"),
    (lambda im, k: (im, k.to(torch.uint8) * 7), r"^masks must be binary \(bool, 0/1 or the lab's 0/255"),
    (lambda im, k: (im[:0], k[:0]), r"^no images to inpaint: an empty batch$"),
    (lambda im, k: (im.numpy(), k), r"^images and masks must be torch tensors"),
])
def test_bad_input_is_one_clear_error(painter, test_images, make, message):
    with pytest.raises(ConfigError, match=message) as err:
        painter.inpaint(*make(*test_images))
    assert "\n" not in str(err.value)


def test_bad_decoding_settings_are_one_clear_error(painter, test_images):
    images, known = test_images
    with pytest.raises(ConfigError, match="^unknown decoding preset 'fast'; valid: lab, paper, quickstart$"):
        painter.inpaint(images, known, preset="fast")
    with pytest.raises(ConfigError, match="^unknown decoding setting 'steps'"):
        painter.inpaint(images, known, steps=4)
    with pytest.raises(ConfigError, match="^sweet_spot=9 > total_iter=8"):
        painter.inpaint(images, known, sweet_spot=9)
