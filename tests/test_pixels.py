"""Per-image region errors (hole L1 / PSNR in eval.py and the bounds benchmark)."""

import math

import torch

from maskgit.metrics.pixels import region_l1_psnr


def test_region_errors_count_only_the_region_per_image():
    truth = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    images = truth.clone()
    images[0, 0] = 255                      # image 0: red channel fully wrong everywhere
    images[1, :, :2] = 51                   # image 1: top half off by 0.2 in every channel
    region = torch.zeros(2, 4, 4, dtype=torch.bool)
    region[0] = True
    region[1, 2:] = True                    # image 1's region is the (exact) bottom half
    l1, psnr = region_l1_psnr(images, truth, region)
    assert torch.allclose(l1, torch.tensor([1 / 3, 0.0]))
    assert math.isclose(float(psnr[0]), 10 * math.log10(3), rel_tol=1e-5)
    assert float(psnr[1]) == 100.0          # exact: the 1e-10 floor

    l1_top, psnr_top = region_l1_psnr(images[1:], truth[1:], ~region[1:])
    assert math.isclose(float(l1_top), 0.2, rel_tol=1e-5)
    assert math.isclose(float(psnr_top), 10 * math.log10(1 / 0.04), rel_tol=1e-4)
