"""Specification of `maskgit.decoding.iterative`: mask schedules, pixel -> token masks, MaskGIT decoding."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from maskgit.decoding.iterative import (
    MASK_SCHEDULES,
    DecodeResult,
    DecodeSettings,
    decode,
    get_schedule,
    halton_ranks,
    pixel_to_token_mask,
)
from maskgit.decoding.settings import SweetSpotBeyondSteps
from maskgit.errors import ConfigError
from maskgit.models.transformer import BidirectionalTransformer

CODES, L = 64, 256
MASK_ID = CODES
N_MASKED = [0, L, 17, 100, 201]  # per image: none, everything, and a few in between
SCHEDULES = sorted(MASK_SCHEDULES)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tensors here are tiny: extra threads only add overhead (and contention on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model() -> BidirectionalTransformer:
    torch.manual_seed(0)
    return BidirectionalTransformer(num_image_tokens=L, num_codebook_vectors=CODES, dim=32,
                                    n_layers=1, hidden_dim=64, num_heads=2).eval()


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random token grids, masks with differing N_i, one seed per image."""
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, CODES, (len(N_MASKED), L), generator=g)
    masked = torch.zeros(len(N_MASKED), L, dtype=torch.bool)
    for i, n in enumerate(N_MASKED):
        masked[i, torch.randperm(L, generator=g)[:n]] = True
    seeds = torch.tensor([11, 22, 33, 44, 55], dtype=torch.int64)
    return tokens, masked, seeds


def run(model, batch, **kw) -> DecodeResult:
    tokens, masked, seeds = batch
    seeds, return_steps = kw.pop("seeds", seeds), kw.pop("return_steps", False)
    settings = DecodeSettings(**{"total_iter": 6, **kw})
    return decode(model, tokens, masked, settings, num_codes=CODES, seeds=seeds, return_steps=return_steps)


def expected_masked(n: int, schedule: str, t: int, total_iter: int) -> int:
    """How many of n originally masked tokens stay masked after step t of total_iter."""
    if t == total_iter - 1:
        return 0
    return math.floor(n * get_schedule(schedule)((t + 1) / total_iter))


# --- mask schedules -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", SCHEDULES)
def test_schedule_goes_from_all_masked_to_none_and_never_increases(name):
    gamma = get_schedule(name)
    assert gamma(0.0) == pytest.approx(1.0)
    assert gamma(1.0) == pytest.approx(0.0, abs=1e-12)
    r = torch.linspace(0, 1, 101, dtype=torch.float64)
    g = gamma(r)
    assert torch.all(g[1:] <= g[:-1])
    assert g.tolist() == pytest.approx([gamma(x) for x in r.tolist()])  # floats == tensors


def test_schedule_formulas():
    r = 0.3
    assert get_schedule("linear")(r) == pytest.approx(0.7)
    assert get_schedule("cosine")(r) == pytest.approx(math.cos(math.pi * r / 2))
    assert get_schedule("square")(r) == pytest.approx(1 - r**2)
    assert get_schedule("cubic")(r) == pytest.approx(1 - r**3)
    assert get_schedule("sqrt")(r) == pytest.approx(1 - math.sqrt(r))
    assert get_schedule("arccos")(r) == pytest.approx(math.acos(r) / (math.pi / 2))


def test_unknown_schedule_error_lists_valid_names():
    with pytest.raises(ConfigError, match="unknown mask_func 'nope'; valid: arccos, cosine") as err:
        get_schedule("nope")
    assert all(name in str(err.value) for name in SCHEDULES)


@pytest.mark.parametrize("bad", [{"total_iter": 0}, {"confidence": "margin"},
                                 {"mask_func": "nope"}, {"temperature": -1.0},
                                 {"temperature": math.inf}, {"order": "random"}])
def test_bad_settings_are_refused_when_made(bad):
    with pytest.raises(ConfigError):
        DecodeSettings(**bad)


# --- pixel mask -> token mask ---------------------------------------------------------------------

def test_one_unknown_pixel_masks_exactly_its_token():
    known = torch.full((3, 64, 64), 255, dtype=torch.uint8)
    known[1, 5, 9] = 0     # token (row 1, col 2)
    known[2, 4, 4] = 0     # first pixel of token (1, 1)
    known[2, 63, 63] = 0   # last pixel of the last token
    masked = pixel_to_token_mask(known)
    assert masked.shape == (3, 256) and masked.dtype == torch.bool
    assert masked.nonzero().tolist() == [[1, 1 * 16 + 2], [2, 17], [2, 255]]


def test_token_mask_accepts_channel_dim_bool_and_unit_masks():
    known = torch.rand(2, 64, 64, generator=torch.Generator().manual_seed(0)) > 0.002
    ref = pixel_to_token_mask(known.to(torch.uint8) * 255)
    assert ref.any() and not ref.all()
    assert torch.equal(pixel_to_token_mask(known), ref)
    assert torch.equal(pixel_to_token_mask(known.float()), ref)
    assert torch.equal(pixel_to_token_mask(known[:, None].float() * 255), ref)


def mask_root() -> Path:
    root = os.environ.get("MASKGIT_DATA_ROOT")
    if not root:
        pytest.skip("MASKGIT_DATA_ROOT is not set: no cat_face data set to read masks from")
    return Path(root) / "mask64"


def load_masks(paths: list[Path]) -> torch.Tensor:
    from PIL import Image

    return torch.from_numpy(np.stack([np.array(Image.open(p).convert("L")) for p in paths]))


def test_real_masks_pool_to_31_to_139_masked_tokens():
    paths = sorted(mask_root().glob("mask_*.png"))
    assert paths[0].name == "mask_000.png" and len(paths) == 747
    pixels = load_masks(paths)
    assert set(pixels.unique().tolist()) == {0, 255}
    masked = pixel_to_token_mask(pixels)
    # Independent reference: a token is masked iff max-pooling "unknown" over its 4x4 block hits 1.
    ref = F.max_pool2d((pixels == 0).float()[:, None], 4).flatten(1).bool()
    assert torch.equal(masked, ref)
    counts = masked.sum(1)
    assert counts.min() == 31 and counts.max() == 139


def test_decode_fills_a_real_mask(model):
    masked = pixel_to_token_mask(load_masks([mask_root() / "mask_000.png"]))
    assert 31 <= masked.sum() <= 139
    tokens = torch.randint(0, CODES, (1, L), generator=torch.Generator().manual_seed(2))
    out = decode(model, tokens, masked, DecodeSettings(total_iter=8), num_codes=CODES,
                 seeds=torch.tensor([0]), return_steps=True)
    assert torch.equal(out.tokens[~masked], tokens[~masked])
    assert out.tokens.max() < CODES
    counts = out.step_masks.sum(-1)[:, 0].tolist()
    assert counts == [expected_masked(int(masked.sum()), "cosine", t, 8) for t in range(8)]


# --- decode ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("total_iter", [1, 2, 7])
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_exactly_floor_n_gamma_tokens_stay_masked_after_each_step(model, batch, schedule,
                                                                  total_iter):
    _, masked, _ = batch
    out = run(model, batch, mask_func=schedule, total_iter=total_iter, return_steps=True)
    assert out.step_masks.shape == out.step_tokens.shape == (total_iter, *masked.shape)
    previous = masked
    for t, still in enumerate(out.step_masks):
        assert still.sum(1).tolist() == [expected_masked(n, schedule, t, total_iter)
                                         for n in N_MASKED]
        assert not torch.any(still & ~previous)  # once fixed, a token is never masked again
        previous = still
    assert not out.step_masks[-1].any()


@pytest.mark.parametrize("confidence", ["prob", "logprob"])
def test_known_tokens_are_kept_and_no_mask_id_is_left(model, batch, confidence):
    tokens, masked, _ = batch
    out = run(model, batch, confidence=confidence, return_steps=True)
    assert out.tokens.shape == tokens.shape and out.tokens.dtype == torch.long
    assert torch.equal(out.tokens[~masked], tokens[~masked])
    assert out.tokens.min() >= 0 and out.tokens.max() < CODES
    assert out.step_tokens.max() < CODES  # every step's result is fully filled
    for step_tokens, still in zip(out.step_tokens, out.step_masks, strict=True):
        assert torch.equal(step_tokens[~still], out.tokens[~still])  # fixed tokens never change
    assert torch.equal(out.step_tokens[-1], out.tokens)


def test_values_under_the_mask_are_ignored(model, batch):
    tokens, masked, seeds = batch
    garbage = torch.where(masked, MASK_ID, tokens)
    assert torch.equal(run(model, batch).tokens, run(model, (garbage, masked, seeds)).tokens)


def test_mask_id_is_never_sampled_even_if_the_model_prefers_it(model, batch):
    def mask_loving(tokens):
        logits = model(tokens)
        logits[..., MASK_ID] = 1e4
        return logits

    out = run(model, batch)
    assert torch.equal(run(mask_loving, batch).tokens, out.tokens)
    assert out.tokens.max() < CODES


def test_the_lowest_scored_predictions_stay_masked(model, batch):
    """Without noise on the score, the tokens left masked are the least probable samples."""
    tokens, masked, _ = batch
    out = run(model, batch, choice_temperature=0.0, return_steps=True)
    with torch.no_grad():
        probs = model(torch.where(masked, MASK_ID, tokens))[..., :CODES].softmax(-1)
    p = probs.gather(-1, out.step_tokens[0].unsqueeze(-1)).squeeze(-1)
    still, fixed = out.step_masks[0], masked & ~out.step_masks[0]
    for i in range(len(N_MASKED)):
        if still[i].any() and fixed[i].any():
            assert p[i][still[i]].max() <= p[i][fixed[i]].min()
    # prob and logprob rank identically without noise; the Gumbel noise makes them differ.
    assert torch.equal(out.tokens, run(model, batch, choice_temperature=0.0,
                                       confidence="logprob").tokens)
    assert not torch.equal(run(model, batch).tokens, run(model, batch, confidence="logprob").tokens)


def test_halton_ranks_are_a_permutation_that_spreads_over_the_grid():
    ranks = halton_ranks(L)
    assert sorted(ranks.tolist()) == list(range(L))
    cells = (ranks < 16).nonzero().flatten()  # the first 16 revealed: no two neighbours, every quarter
    ys, xs = cells // 16, cells % 16
    distance = ((ys[:, None] - ys) ** 2 + (xs[:, None] - xs) ** 2).float().sqrt() + 99 * torch.eye(16)
    assert distance.min() >= 2
    quarters = (ranks < 16).view(2, 8, 2, 8).sum(dim=(1, 3))
    assert quarters.min() >= 3 and quarters.max() <= 5
    raster = torch.arange(L)  # what it is not: a raster order puts the first 16 in one row
    assert ((raster < 16).view(2, 8, 2, 8).sum(dim=(1, 3)) == 0).any()
    with pytest.raises(ConfigError, match="square"):
        halton_ranks(200)


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_halton_order_reveals_masked_tokens_in_its_fixed_order(model, batch, schedule):
    """Each step leaves exactly the schedule's count masked, and those are the latest in the Halton
    order among the image's masked tokens, whatever the model's confidences."""
    _, masked, _ = batch
    out = run(model, batch, mask_func=schedule, order="halton", return_steps=True)
    ranks = halton_ranks(L)
    for t, still in enumerate(out.step_masks):
        assert still.sum(1).tolist() == [expected_masked(n, schedule, t, 6) for n in N_MASKED]
        for i in range(len(N_MASKED)):
            revealed = masked[i] & ~still[i]
            if still[i].any() and revealed.any():
                assert ranks[still[i]].min() > ranks[revealed].max()
    # no confidences: choice temperature and confidence change nothing, the order does
    assert torch.equal(out.tokens, run(model, batch, mask_func=schedule, order="halton",
                                       choice_temperature=0.0, confidence="logprob").tokens)
    assert not torch.equal(out.tokens, run(model, batch, mask_func=schedule).tokens)


def test_score_noise_is_choice_temperature_times_one_minus_r(model, batch):
    """T=2, c=0.375 and T=4, c=0.25 both put noise 0.1875 * Gumbel on step 0's scores (r = 1/2 and
    1/4): same draws, same ranking, so the N/2 left masked are among the 3N/4 left masked."""
    def sharp(tokens):  # confident, varied predictions so that the noise scale matters
        return model(tokens) * 30

    kw = {"mask_func": "linear", "return_steps": True}
    two = run(sharp, batch, total_iter=2, choice_temperature=0.375, **kw)
    four = run(sharp, batch, total_iter=4, choice_temperature=0.25, **kw)
    assert torch.equal(two.step_tokens[0], four.step_tokens[0])  # same samples at step 0
    assert not torch.any(two.step_masks[0] & ~four.step_masks[0])
    other = run(sharp, batch, total_iter=4, choice_temperature=1.0, **kw)
    assert torch.any(two.step_masks[0] & ~other.step_masks[0])  # the test can tell scales apart


def test_temperature_zero_takes_the_most_likely_code_of_every_step(model, batch):
    tokens, masked, _ = batch
    result = run(model, batch, temperature=0.0, return_steps=True)
    inputs = torch.where(masked, MASK_ID, tokens)
    for t in range(6):
        with torch.no_grad():
            best = model(inputs)[..., :CODES].argmax(-1)
        filled_now = (inputs == MASK_ID) & ~result.step_masks[t]
        assert torch.equal(result.step_tokens[t][filled_now], best[filled_now])
        inputs = torch.where(result.step_masks[t], MASK_ID, result.step_tokens[t])
    assert not torch.equal(result.tokens, run(model, batch).tokens)  # sampling differs


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_codes_are_drawn_from_softmax_of_logits_over_temperature(temperature):
    """One step over 256 masked positions of 64 images: code frequencies match the tempered softmax."""
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0])
    images, length = 64, 256

    def fixed(tokens):
        return logits.expand(*tokens.shape, len(logits))

    out = decode(fixed, torch.zeros(images, length, dtype=torch.long),
                 torch.ones(images, length, dtype=torch.bool),
                 DecodeSettings(total_iter=1, temperature=temperature), num_codes=len(logits),
                 seeds=torch.arange(images)).tokens
    freq = torch.bincount(out.flatten(), minlength=len(logits)).double() / out.numel()
    expected = torch.softmax(logits.double() / temperature, 0)
    assert torch.allclose(freq, expected, atol=0.01), (freq, expected)  # 16,384 draws: sd < 0.004


def test_deterministic_given_seeds_and_different_for_other_seeds(model, batch):
    tokens, masked, seeds = batch
    a, b = run(model, batch).tokens, run(model, batch).tokens
    assert torch.equal(a, b)
    c = run(model, (tokens, masked, seeds + 1000)).tokens
    differs = (a != c).any(1).tolist()
    assert differs == [n > 0 for n in N_MASKED]


def test_batch_result_equals_each_image_decoded_alone(model, batch):
    tokens, masked, seeds = batch
    full = run(model, batch, mask_func="arccos", total_iter=5).tokens
    for i in range(len(N_MASKED)):
        alone = run(model, (tokens[i:i + 1], masked[i:i + 1], seeds[i:i + 1]),
                    mask_func="arccos", total_iter=5).tokens
        assert torch.equal(alone[0], full[i]), f"image {i}"
    perm = torch.tensor([3, 0, 4, 2, 1])
    shuffled = run(model, (tokens[perm], masked[perm], seeds[perm]), mask_func="arccos",
                   total_iter=5).tokens
    assert torch.equal(shuffled, full[perm])


@pytest.mark.parametrize("sweet_spot", [1, 3, 5])
def test_sweet_spot_runs_that_many_steps_with_every_token_filled(model, batch, sweet_spot):
    """The lab's counting: sweet_spot=s runs s steps; tokens still masked take step s's codes."""
    full = run(model, batch, total_iter=6, return_steps=True)
    early = run(model, batch, total_iter=6, sweet_spot=sweet_spot, return_steps=True)
    assert early.step_tokens.shape[0] == early.step_masks.shape[0] == sweet_spot
    assert torch.equal(early.tokens, full.step_tokens[sweet_spot - 1])
    assert torch.equal(early.step_tokens, full.step_tokens[:sweet_spot])
    assert torch.equal(early.step_masks, full.step_masks[:sweet_spot])
    assert early.tokens.max() < CODES
    if sweet_spot < 5:  # enough left masked that stopping early changes the result
        assert not torch.equal(early.tokens, full.tokens)


def test_sweet_spot_of_total_iter_is_the_full_decoding(model, batch):
    assert torch.equal(run(model, batch, total_iter=6, sweet_spot=6).tokens,
                       run(model, batch, total_iter=6, sweet_spot=-1).tokens)


@pytest.mark.parametrize(("sweet_spot", "message"), [
    (0, "sweet_spot must be a positive integer or -1 (steps run, 1..total_iter; -1: all), got 0"),
    (-2, "sweet_spot must be a positive integer or -1"),
    (7, "sweet_spot=7 > total_iter=6: a decoding of 6 steps stops after at most 6 (sweet_spot=-1 runs all)"),
])
def test_sweet_spot_outside_one_to_total_iter_is_refused(sweet_spot, message):
    with pytest.raises(ConfigError) as err:
        DecodeSettings(total_iter=6, sweet_spot=sweet_spot)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
    assert isinstance(err.value, SweetSpotBeyondSteps) == (sweet_spot == 7)


def test_without_return_steps_no_steps_are_kept(model, batch):
    out = run(model, batch)
    assert out.step_tokens is None and out.step_masks is None


# --- properties over random small problems (a cheap table model instead of the transformer) ----

@settings(max_examples=40, deadline=None)
@given(data=st.data(), length=st.integers(1, 24), total_iter=st.integers(1, 9),
       schedule=st.sampled_from(SCHEDULES), confidence=st.sampled_from(["prob", "logprob"]),
       seed=st.integers(0, 2**31))
def test_decoding_properties_on_random_problems(data, length, total_iter, schedule, confidence,
                                                seed):
    g = torch.Generator().manual_seed(seed)
    codes = 5
    table = torch.randn(codes + 1, length, codes + 1, generator=g)
    table[..., codes] = 50.0  # the mask id column must never win

    def logits_fn(tokens):  # logits depend on the current token at each position
        return table[tokens, torch.arange(tokens.shape[1])]

    n = data.draw(st.lists(st.integers(0, length), min_size=1, max_size=4))
    masked = torch.stack([torch.randperm(length, generator=g) < k for k in n])
    tokens = torch.randint(0, codes, masked.shape, generator=g)
    seeds = torch.randint(0, 2**62, (len(n),), generator=g)
    settings = DecodeSettings(total_iter=total_iter, mask_func=schedule, confidence=confidence)
    out = decode(logits_fn, tokens, masked, settings, num_codes=codes, seeds=seeds, return_steps=True)
    assert torch.equal(out.tokens[~masked], tokens[~masked])
    assert out.tokens.max() < codes
    for t, still in enumerate(out.step_masks):
        assert still.sum(1).tolist() == [expected_masked(k, schedule, t, total_iter) for k in n]
    alone = decode(logits_fn, tokens[-1:], masked[-1:], settings, num_codes=codes, seeds=seeds[-1:])
    assert torch.equal(alone.tokens[0], out.tokens[-1])
