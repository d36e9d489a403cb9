"""`decode` against google-research/maskgit's own `parallel_decode`, step for step.

$MASKGIT_SHARED_DIR/fixtures/decode_reference.pt (its README) holds the tokens Google's decoding
produces after every step, with noise off and argmax codes, for 3 schedules x T in {4, 8, 12} x the two
confidences, on a logits function given by data. Our `decode` runs exactly that problem.
"""

from __future__ import annotations

import pytest
import torch

from maskgit.decoding.iterative import DecodeSettings, decode


@pytest.fixture(scope="module")
def reference(fixtures_dir) -> dict:
    path = fixtures_dir / "decode_reference.pt"
    assert path.is_file(), f"{path} is missing from the shared fixtures"
    return torch.load(path, weights_only=False)


def reference_logits(ref: dict):
    """logits(x)[b, l, :] = A[l, :] + E[x[b, (l - 1) % L], :], the mask id's row of E included."""
    a, e = ref["A"], ref["E"]

    def logits(tokens: torch.Tensor) -> torch.Tensor:
        return a + e[torch.roll(tokens, shifts=1, dims=1)]
    return logits


def test_the_problem_is_as_the_readme_says(reference):
    assert reference["K"] == 64 and reference["L"] == 256
    assert reference["tokens"].shape == reference["masked"].shape == (8, 256)
    assert reference["masked"].sum(1).tolist() == reference["num_masked"].tolist()
    cases = {(c["mask_func"], c["total_iter"], c["confidence"]) for c in reference["cases"]}
    assert cases == {(m, t, c) for m in ("linear", "cosine", "square") for t in (4, 8, 12)
                     for c in ("prob", "logprob")}


@pytest.mark.parametrize("case", range(18))
def test_every_step_equals_googles(reference, case):
    c = reference["cases"][case]
    assert not c["clamp_differs"].any()  # Google's at-least-one clamp changes no count here
    settings = DecodeSettings(mask_func=c["mask_func"], total_iter=c["total_iter"],
                              confidence=c["confidence"], temperature=0.0,
                              choice_temperature=0.0)  # argmax codes, noise off
    out = decode(reference_logits(reference), reference["tokens"], reference["masked"], settings,
                 num_codes=reference["K"], seeds=torch.arange(8), return_steps=True)
    assert out.step_tokens.shape == c["step_tokens"].shape
    for t in range(c["total_iter"]):
        assert torch.equal(out.step_tokens[t], c["step_tokens"][t]), f"step {t + 1}: other tokens"
    # Google's last mask is its own bookkeeping (its clamp keeps one token masked); the tokens are final
    for t in range(c["total_iter"] - 1):
        assert torch.equal(out.step_masks[t], c["step_masks"][t]), f"step {t + 1}: other tokens kept masked"
    assert not out.step_masks[-1].any()
    assert torch.equal(out.tokens, c["step_tokens"][-1])
    # and a sweet spot s returns Google's tokens after step s
    s = c["total_iter"] // 2
    early = decode(reference_logits(reference), reference["tokens"], reference["masked"],
                   DecodeSettings(**{**settings.__dict__, "sweet_spot": s}), num_codes=reference["K"],
                   seeds=torch.arange(8))
    assert torch.equal(early.tokens, c["step_tokens"][s - 1])
