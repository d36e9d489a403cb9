"""Generated inpainting masks for data sets that come without them: box, border, free-form strokes.

Every mask is a bool (size, size) tensor in the lab's convention: True (mask64's 255) = known pixel,
False (0) = hole. Mask i comes only from a generator seeded by (seed, i), so it does not depend on
how many masks are made, in which order, or on batching.

- `box`: one random axis-aligned rectangle whose area fraction lies in `area` (inclusive) and whose
  height / width ratio lies in `aspect` (log-uniform).
- `border` (outpainting): the centre is kept, a border `width` pixels wide is the hole; `width` is
  a number or an inclusive [min, max] range drawn per mask; `sides` picks which sides are cut.
- `freeform`: DeepFill v2's free-form brush strokes (Yu et al., "Free-Form Image Inpainting with
  Gated Convolution", 2019) scaled to the image: `strokes` strokes of `vertices` vertices each, turning
  by angles around 2pi/5, segment lengths around diag/8, brush `width` pixels, random flips.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor

from maskgit.errors import ConfigError, DataError

SIDES = ("top", "bottom", "left", "right")


def _range(name: str, value: Any, kind: type, low: float, high: float) -> tuple:
    """A number or a [min, max] pair -> (min, max), checked to lie in [low, high]."""
    pair = tuple(value) if isinstance(value, Sequence) and not isinstance(value, str) else (value, value)
    if len(pair) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pair):
        raise ConfigError(f"{name} must be a number or a [min, max] pair, got {value!r}")
    if kind is int and not all(float(v).is_integer() for v in pair):
        raise ConfigError(f"{name} must be whole numbers, got {value!r}")
    lo, hi = kind(pair[0]), kind(pair[1])
    if not low <= lo <= hi <= high:
        raise ConfigError(f"{name} must satisfy {low} <= min <= max <= {high}, got {value!r}")
    return lo, hi


def box_mask(rng: np.random.Generator, size: int, area: Sequence[float] = (0.1, 0.4),
             aspect: Sequence[float] = (0.5, 2.0)) -> Tensor:
    lo, hi = _range("masks.box.area", area, float, 0.0, 1.0)
    a_lo, a_hi = _range("masks.box.aspect", aspect, float, 1e-3, 1e3)
    total = size * size
    target = rng.uniform(lo, hi) * total
    ratio = math.exp(rng.uniform(math.log(a_lo), math.log(a_hi)))  # height / width
    ideal = math.sqrt(target * ratio)
    # The integer height nearest the ideal one that admits a width with the area inside the range.
    for h in sorted(range(1, size + 1), key=lambda h: (abs(h - ideal), h)):
        w_lo, w_hi = max(1, math.ceil(lo * total / h - 1e-9)), min(size, math.floor(hi * total / h + 1e-9))
        if w_lo <= w_hi:
            w = min(max(round(target / h), w_lo), w_hi)
            break
    else:
        raise ConfigError(f"masks.box.area={list(area)}: no rectangle of a {size}x{size} image has "
                          "such an area")
    top, left = int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1))
    known = torch.ones(size, size, dtype=torch.bool)
    known[top:top + h, left:left + w] = False
    return known


def border_mask(rng: np.random.Generator, size: int, width: int | Sequence[int] = 16,
                sides: Sequence[str] = SIDES) -> Tensor:
    sides = [sides] if isinstance(sides, str) else list(sides)
    if not sides or any(s not in SIDES for s in sides):
        raise ConfigError(f"masks.border.sides={sides}: choose one or more of {', '.join(SIDES)}")
    per_axis = max(("top" in sides) + ("bottom" in sides), ("left" in sides) + ("right" in sides))
    w_lo, w_hi = _range("masks.border.width", width, int, 1, (size - 1) // per_axis)
    w = int(rng.integers(w_lo, w_hi + 1))
    known = torch.ones(size, size, dtype=torch.bool)
    cut = {"top": (slice(0, w), slice(None)), "bottom": (slice(size - w, size), slice(None)),
           "left": (slice(None), slice(0, w)), "right": (slice(None), slice(size - w, size))}
    for side in sides:
        known[cut[side]] = False
    return known


def freeform_mask(rng: np.random.Generator, size: int, strokes: Sequence[int] = (1, 3),
                  vertices: Sequence[int] = (4, 11), width: Sequence[int] = (3, 10),
                  mean_angle: float = 2 * math.pi / 5, angle_range: float = 2 * math.pi / 15) -> Tensor:
    s_lo, s_hi = _range("masks.freeform.strokes", strokes, int, 1, 1000)
    v_lo, v_hi = _range("masks.freeform.vertices", vertices, int, 1, 1000)
    b_lo, b_hi = _range("masks.freeform.width", width, int, 1, size)
    radius = math.sqrt(2) * size / 8  # DeepFill v2's average segment length: diagonal / 8
    hole = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(hole)
    for _ in range(int(rng.integers(s_lo, s_hi + 1))):
        n = int(rng.integers(v_lo, v_hi + 1))
        a_min = mean_angle - rng.uniform(0, angle_range)
        a_max = mean_angle + rng.uniform(0, angle_range)
        points = [(int(rng.integers(0, size)), int(rng.integers(0, size)))]
        for j in range(n):
            angle = rng.uniform(a_min, a_max)
            angle = 2 * math.pi - angle if j % 2 == 0 else angle  # zig-zag, as DeepFill v2
            r = float(np.clip(rng.normal(radius, radius / 2), 0, 2 * radius))
            x, y = points[-1]
            points.append((int(np.clip(x + r * math.cos(angle), 0, size - 1)),
                           int(np.clip(y + r * math.sin(angle), 0, size - 1))))
        brush = int(rng.integers(b_lo, b_hi + 1))
        draw.line(points, fill=255, width=brush)
        for x, y in points:  # round joints and ends
            draw.ellipse((x - brush // 2, y - brush // 2, x + brush // 2, y + brush // 2), fill=255)
    holes = np.array(hole) > 0
    if rng.random() < 0.5:
        holes = holes[:, ::-1]
    if rng.random() < 0.5:
        holes = holes[::-1, :]
    return torch.from_numpy(~holes.copy())


MASK_GENERATORS: dict[str, Callable[..., Tensor]] = {
    "box": box_mask, "border": border_mask, "freeform": freeform_mask}


def mask_rng(seed: int, index: int) -> np.random.Generator:
    """Mask `index`'s own generator: the same (seed, index) always gives the same mask."""
    if seed < 0 or index < 0:
        raise ConfigError(f"mask seed and index must be >= 0, got seed={seed}, index={index}")
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


def check_mask_params(shape: str, params: dict[str, Any] | None, size: int = 64) -> dict[str, Any]:
    """The parameters for generator `shape`, checked by drawing one mask (one-line ConfigError)."""
    if shape not in MASK_GENERATORS:
        raise ConfigError(f"unknown mask shape {shape!r}; valid: {', '.join(MASK_GENERATORS)}")
    params = dict(params or {})
    fn = MASK_GENERATORS[shape]
    valid = list(inspect.signature(fn).parameters)[2:]  # after (rng, size)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ConfigError(f"masks.{shape}: unknown option(s) {', '.join(unknown)}; valid: {', '.join(valid)}")
    fn(mask_rng(0, 0), size, **params)
    return params


def generate_masks(shape: str, indices: int | Sequence[int], *, seed: int = 0, size: int = 64,
                   **params: Any) -> Tensor:
    """Masks (N, size, size) bool, True = known, for `indices` (or range(n) for an int)."""
    if shape not in MASK_GENERATORS:
        raise ConfigError(f"unknown mask shape {shape!r}; valid: {', '.join(MASK_GENERATORS)}")
    fn = MASK_GENERATORS[shape]
    indices = range(indices) if isinstance(indices, int) else indices
    masks = [fn(mask_rng(seed, i), size, **params) for i in indices]
    return torch.stack(masks) if masks else torch.ones(0, size, size, dtype=torch.bool)


def ink(images: Tensor) -> Tensor:
    """Ink (N, H, W) of uint8 images of dark strokes on light paper: 255 - the mean of the channels."""
    return 255.0 - images.float().mean(1)


def hidden_share(images: Tensor, known: Tensor) -> Tensor:
    """Share (N,) of each image's ink under its hole (`known` False)."""
    amount = ink(images)
    return (amount * ~known).sum((1, 2)) / amount.sum((1, 2)).clamp_min(1e-9)


def share_summary(share: Tensor) -> dict[str, float]:
    """What a report says of the hidden ink shares: mean, min, max."""
    return {k: round(float(f(share)), 4) for k, f in (("mean", torch.mean), ("min", torch.min),
                                                      ("max", torch.max))} if len(share) else {}


def check_hidden_ink(value: Any) -> list[float]:
    """`masks.hidden_ink` as [min, max] shares of the ink, 0 <= min <= max <= 1."""
    return list(_range("masks.hidden_ink", value, float, 0.0, 1.0))


def ink_masks(shape: str, images: Tensor, hidden: tuple[float, float], *, seed: int = 0, size: int = 64,
              tries: int = 1000, **params: Any) -> Tensor:
    """Masks (N, size, size) of `shape` such that each hides a share of its image's ink (`ink`) in
    `hidden` [min, max]: mask i is the first of (seed, i)'s generator's draws that does (the first draw
    is `generate_masks`'s mask). A fixed box size hides 2% to 80% of a digit, so "a quarter to half of
    each digit hidden" needs the image."""
    lo, hi = hidden
    out = []
    for i, image in enumerate(images):
        if float(ink(image[None]).sum()) <= 0:
            raise DataError(f"masks.hidden_ink: test image {i} has no ink (a blank page)")
        rng, fn = mask_rng(seed, i), MASK_GENERATORS[shape]
        for _ in range(tries):
            known = fn(rng, size, **params)
            if lo <= float(hidden_share(image[None], known[None])) <= hi:
                out.append(known)
                break
        else:
            raise DataError(f"masks.hidden_ink={[lo, hi]}: none of {tries} masks.{shape} masks hides such a "
                            f"share of test image {i}'s ink; widen the range or change masks.{shape}")
    return torch.stack(out) if out else torch.ones(0, size, size, dtype=torch.bool)
