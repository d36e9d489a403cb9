"""Class-conditional MaskGIT, piece by piece: the class token, classifier-free guidance in decoding,
condition dropout, and the lab's unconditional format left as it was."""

from __future__ import annotations

import pytest
import torch

from maskgit.decoding.iterative import GUIDANCE_SCHEDULES, DecodeSettings, decode, guided_logits
from maskgit.errors import ConfigError
from maskgit.models.transformer import BidirectionalTransformer

CODES, L, CLASSES = 16, 64, 3


def transformer(num_classes: int = CLASSES, seed: int = 0) -> BidirectionalTransformer:
    torch.manual_seed(seed)
    return BidirectionalTransformer(num_image_tokens=L, num_codebook_vectors=CODES, dim=32, n_layers=1,
                                    hidden_dim=64, num_heads=2, dropout=0.0, num_classes=num_classes).eval()


def trained_looking(model: BidirectionalTransformer):
    """The model's logits plus a strong per-class preference, as a trained model has (at init the
    class token barely moves the logits)."""
    preference = 4.0 * torch.randn(CLASSES + 1, L, CODES + 1, generator=torch.Generator().manual_seed(9))

    def logits(tokens, labels):
        return model(tokens, labels) + preference[labels]

    return logits


def test_unconditional_model_keeps_the_lab_state_dict_and_refuses_labels():
    lab = transformer(num_classes=0)
    assert not any(k.startswith("class_") for k in lab.state_dict())
    torch.manual_seed(0)
    before = BidirectionalTransformer(num_image_tokens=L, num_codebook_vectors=CODES, dim=32, n_layers=1,
                                      hidden_dim=64, num_heads=2, dropout=0.0)
    assert list(before.state_dict()) == list(lab.state_dict())
    with pytest.raises(ValueError, match="unconditional"):
        lab(torch.zeros(2, L, dtype=torch.long), torch.zeros(2, dtype=torch.long))


def test_class_token_changes_the_logits_and_no_label_means_the_null_class():
    model = transformer()
    tokens = torch.randint(0, CODES + 1, (4, L), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        per_class = [model(tokens, torch.full((4,), c)) for c in range(CLASSES + 1)]
        unlabelled = model(tokens)
    assert per_class[0].shape == (4, L, CODES + 1)
    assert not torch.allclose(per_class[0], per_class[1])
    assert torch.equal(unlabelled, per_class[CLASSES])  # the "no class" id
    # each image sees only its own label: a batch equals its images one by one
    mixed = torch.tensor([0, 1, 2, 3])
    with torch.no_grad():
        together = model(tokens, mixed)
        alone = torch.cat([model(tokens[i:i + 1], mixed[i:i + 1]) for i in range(4)])
    torch.testing.assert_close(together, alone)


def test_guided_logits_combine_both_passes_of_one_forward():
    model = transformer()
    tokens = torch.randint(0, CODES, (3, L), generator=torch.Generator().manual_seed(2))
    labels = torch.tensor([0, 2, 1])
    calls = []

    def counted(t, y):
        calls.append(len(t))
        return model(t, y)

    with torch.no_grad():
        cond, uncond = model(tokens, labels), model(tokens, torch.full_like(labels, CLASSES))
        guided = guided_logits(counted, tokens, labels, CLASSES, 2.0)
        plain = guided_logits(counted, tokens, labels, CLASSES, 0.0)
    torch.testing.assert_close(guided, 3.0 * cond - 2.0 * uncond, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(plain, cond)
    assert calls == [6, 3]  # guidance: one forward pass of the batch twice; none: the batch once


def _decode(model, settings, tokens, masked, labels, seeds):
    return decode(model, tokens, masked, settings, num_codes=CODES, seeds=seeds, labels=labels,
                  null_label=CLASSES).tokens


@pytest.mark.parametrize("schedule", sorted(GUIDANCE_SCHEDULES))
def test_guided_decoding_fills_every_mask_and_does_not_depend_on_the_batch(schedule):
    model = trained_looking(transformer())
    g = torch.Generator().manual_seed(3)
    tokens = torch.randint(0, CODES, (5, L), generator=g)
    masked = torch.rand(5, L, generator=g) < 0.7
    labels, seeds = torch.tensor([0, 1, 2, 0, 1]), torch.arange(5) + 100
    s = DecodeSettings(mask_func="arccos", total_iter=5, guidance=1.5, guidance_schedule=schedule)
    out = _decode(model, s, tokens, masked, labels, seeds)
    assert (out < CODES).all() and torch.equal(out[~masked], tokens[~masked])
    alone = torch.cat([_decode(model, s, tokens[i:i + 1], masked[i:i + 1], labels[i:i + 1], seeds[i:i + 1])
                       for i in range(5)])
    assert torch.equal(out, alone)
    # the guidance and the labels steer the result
    assert not torch.equal(out, _decode(model, DecodeSettings(mask_func="arccos", total_iter=5),
                                        tokens, masked, labels, seeds))
    assert not torch.equal(out, _decode(model, s, tokens, masked, (labels + 1) % CLASSES, seeds))


def test_guidance_without_a_conditional_model_or_with_an_unknown_schedule_is_refused():
    model = transformer(num_classes=0)
    tokens, masked = torch.zeros(1, L, dtype=torch.long), torch.ones(1, L, dtype=torch.bool)
    with pytest.raises(ConfigError, match="class-conditional"):
        decode(model, tokens, masked, DecodeSettings(guidance=1.0), num_codes=CODES, seeds=torch.zeros(1))
    with pytest.raises(ConfigError, match="guidance_schedule"):
        decode(model, tokens, masked, DecodeSettings(guidance_schedule="cubic"), num_codes=CODES,
               seeds=torch.zeros(1))


def test_linear_guidance_grows_to_the_scale():
    assert [GUIDANCE_SCHEDULES["linear"](2.0, r) for r in (0.25, 1.0)] == [0.5, 2.0]
    assert GUIDANCE_SCHEDULES["constant"](2.0, 0.25) == 2.0


def test_condition_dropout_replaces_labels_with_the_null_class(train_cfg):
    from hydra.utils import instantiate

    cfg = train_cfg("model.transformer.num_classes=3", "model.classes=[{id: a, name: A}, {id: b, name: B},"
                    " {id: c, name: C}]")
    model = instantiate(cfg.model)
    labels = torch.tensor([0, 1, 2] * 200)
    batch = [torch.zeros(600, 256, dtype=torch.long), labels]
    g = torch.Generator().manual_seed(0)
    assert torch.equal(model._labels(batch, 0.0, g), labels)
    assert (model._labels(batch, 1.0, g) == 3).all()
    dropped = (model._labels(batch, 0.25, g) == 3).float().mean()
    assert 0.18 < dropped < 0.32
    with pytest.raises(ConfigError, match="serves no labels"):
        model._labels(batch[:1], 0.1, g)
    with pytest.raises(Exception, match="num_classes=3 but 1 class names"):  # wrapped by Hydra
        instantiate(train_cfg("model.transformer.num_classes=3", "model.classes=[{id: a, name: A}]").model)
