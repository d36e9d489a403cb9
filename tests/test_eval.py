"""eval.py on the real test set: outputs, metrics, determinism, devices, and bad input."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from conftest import compose_config, eval_overrides, run_cli
from PIL import Image

from maskgit.data.images import read_image, read_mask
from maskgit.errors import MaskGITError
from maskgit.tasks.eval import evaluate
from maskgit.utils.identity import file_sha256

N_TEST = 24


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, cache_dir, data_root, trained_ckpt, inception_weights):
    """One full evaluation (FID on all 24 images and on the unseen ones) shared by several tests."""
    out = tmp_path_factory.mktemp("eval")
    cfg = compose_config("eval", eval_overrides(trained_ckpt, data_root, inception_weights, N_TEST) +
                         ["total_iter=4"], out, cache_dir)
    report = evaluate(cfg)
    return out, report


def test_writes_lab_named_results_pictures_and_metrics(evaluated, data_root, inception_weights):
    out, report = evaluated
    results = sorted(p.name for p in (out / "test_results").iterdir())
    assert results == [f"image_{i:03d}.png" for i in range(N_TEST)]
    with Image.open(out / "test_results" / "image_005.png") as img:
        assert img.size == (64, 64) and img.mode == "RGB"
    assert not (out / "test_results.partial").exists() and not (out / "pictures.partial").exists()
    pictures = sorted(p.name for p in (out / "pictures").iterdir())
    assert pictures == ["grid.png", "progression_000.png", "progression_001.png"]
    with Image.open(out / "pictures" / "progression_000.png") as img:  # input + 4 steps, 2 rows
        assert img.size == (2 + 5 * 66, 4 + 2 * 64)

    saved = json.loads((out / "metrics.json").read_text())
    assert saved["metrics"] == pytest.approx(report["metrics"])
    m = saved["metrics"]
    assert m["fid"] > 0 and m["fid_unseen"] > 0 and m["fid_unseen"] != m["fid"]
    for name in ("fid", "fid_unseen"):
        assert m[f"{name}_ci95_low"] < m[name] < m[f"{name}_ci95_high"]
    assert m["kid_std"] > 0 and m["kid_unseen_std"] > 0 and m["kid_mean"] != m["kid_unseen_mean"]
    assert 0 <= m["masked_token_accuracy"] <= 1 and 0 < m["hole_l1"] < 1 and 0 < m["hole_psnr"] < 60
    assert saved["num_images"] == N_TEST and saved["composite"] is False
    assert {"decode", "vqgan_decode", "features", "reference_stats", "total"} <= set(saved["timings_s"])
    assert saved["fid"]["resize"] == "torch-fidelity" and saved["fid"]["features"] == 64
    assert saved["fid"]["weights_sha256"] == file_sha256(inception_weights)
    assert saved["config"]["total_iter"] == 4 and saved["versions"]["torch"]
    # the preset (the default: the lab's) and every decoding setting as it ran (temperature changed after it)
    assert saved["decoding"] == {"preset": "lab", "mask_func": "cosine", "total_iter": 4, "sweet_spot": -1,
                                 "choice_temperature": 4.5, "confidence": "prob", "temperature": 1.0,
                                 "seed": 0, "guidance": 0.0, "guidance_schedule": "constant",
                                 "order": "confidence"}


def test_results_are_the_decoded_tokens_not_the_ground_truth(evaluated, data_root):
    out, _ = evaluated
    result = read_image(out / "test_results" / "image_000.png").float()
    truth = read_image(data_root / "gt" / "image_000.png").float()
    assert (result - truth).abs().mean() > 1  # a random tiny VQGAN cannot reproduce the photo


def test_composite_keeps_known_pixels_and_same_seed_same_images(evaluated, tmp_path, cache_dir, data_root,
                                                                trained_ckpt, inception_weights):
    out, _ = evaluated
    args = eval_overrides(trained_ckpt, data_root, inception_weights, 8) + [
        "total_iter=4", "composite=true", "metrics.fid.enabled=false"]
    evaluate(compose_config("eval", args, tmp_path, cache_dir))
    for i in range(8):
        known = read_mask(data_root / "mask64" / f"mask_{i:03d}.png")
        ours = read_image(tmp_path / "test_results" / f"image_{i:03d}.png")
        masked = read_image(data_root / "masked_image" / f"image_{i:03d}.png")
        plain = read_image(out / "test_results" / f"image_{i:03d}.png")
        assert torch.equal(ours[:, known], masked[:, known])
        # Same seed: the holes hold exactly the pixels of the non-composite run (batch size 8 vs 8,
        # 24 vs 8 images: per-image seeds make results independent of batching).
        assert torch.equal(ours[:, ~known], plain[:, ~known])


def test_other_seed_gives_other_results(evaluated, tmp_path, cache_dir, data_root, trained_ckpt,
                                        inception_weights):
    out, _ = evaluated
    args = eval_overrides(trained_ckpt, data_root, inception_weights, 4) + [
        "total_iter=4", "seed=1", "metrics.fid.enabled=false", "pictures.num_images=0"]
    evaluate(compose_config("eval", args, tmp_path, cache_dir))
    differ = [not torch.equal(read_image(tmp_path / "test_results" / f"image_{i:03d}.png"),
                              read_image(out / "test_results" / f"image_{i:03d}.png")) for i in range(4)]
    assert any(differ)


@pytest.mark.slow
def test_two_processes_give_the_same_fid_and_images(tmp_path, data_root, trained_ckpt, inception_weights,
                                                    cache_dir):
    # Same numerics on both sides: batch size 1 and one CPU thread (Lightning gives each of two DDP
    # processes on 2 cores one thread). CPU kernels sum in an order that depends on the batch's shape
    # and the thread count, which can flip a near-tie sample of this barely trained model.
    args = eval_overrides(trained_ckpt, data_root, inception_weights, 12) + [
        "total_iter=4", "data.batch_size=1", "metrics.fid.unseen_subset=false", "pictures.num_images=0"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = evaluate(compose_config("eval", args, tmp_path / "one", cache_dir))["metrics"]
    finally:
        torch.set_num_threads(threads)
    proc = run_cli("eval.py", *args, "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
                   cwd=tmp_path, env={"MASKGIT_CACHE_DIR": str(cache_dir)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = (tmp_path / "logs" / "eval" / "runs").iterdir()
    assert json.loads((run / "metrics.json").read_text())["metrics"] == pytest.approx(single, rel=1e-5)
    for i in range(12):  # even indices come from process 0, odd ones from process 1
        assert torch.equal(read_image(run / "test_results" / f"image_{i:03d}.png"),
                           read_image(tmp_path / "one" / "test_results" / f"image_{i:03d}.png"))


# -- bad input: one clear line, and nothing left behind that looks complete ---------------------

def _fails(tmp_path, cache_dir, args: list[str], *words: str) -> None:
    with pytest.raises(MaskGITError) as err:
        evaluate(compose_config("eval", args, tmp_path, cache_dir))
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message
    assert not (tmp_path / "test_results").exists() and not (tmp_path / "metrics.json").exists()


def test_bad_checkpoints(tmp_path, cache_dir, data_root, trained_ckpt, inception_weights, tiny_vqgan_path):
    base = eval_overrides(trained_ckpt, data_root, inception_weights)
    _fails(tmp_path, cache_dir, base + [f"ckpt_path={tmp_path / 'missing.ckpt'}"], "missing.ckpt",
           "does not exist")
    _fails(tmp_path, cache_dir, base + [f"ckpt_path={tiny_vqgan_path}"], "not a maskgit")

    ckpt = torch.load(trained_ckpt, map_location="cpu", weights_only=True)
    ckpt["hyper_parameters"]["transformer"]["dim"] = 48
    wrong = tmp_path / "wrong_arch.ckpt"
    torch.save(ckpt, wrong)
    _fails(tmp_path, cache_dir, base + [f"ckpt_path={wrong}"], "does not match", "shape")

    other = tmp_path / "other_vqgan.pt"
    state = torch.load(tiny_vqgan_path, weights_only=True)
    torch.save({k: v + 0.01 if v.is_floating_point() else v for k, v in state.items()}, other)
    _fails(tmp_path, cache_dir, base + [f"vqgan_ckpt_path={other}"], "VQGAN mismatch",
           "vqgan_ckpt_path gives")
    # The VQGAN the checkpoint names has moved: the hint is eval.py's setting, not train.py's.
    moved = torch.load(trained_ckpt, map_location="cpu", weights_only=True)
    moved["hyper_parameters"]["vqgan"]["ckpt_path"] = str(tmp_path / "moved" / "VQGAN.pt")
    torch.save(moved, tmp_path / "moved.ckpt")
    _fails(tmp_path, cache_dir, base + [f"ckpt_path={tmp_path / 'moved.ckpt'}"], "moved/VQGAN.pt",
           "(check vqgan_ckpt_path)")


def test_bad_decoding_settings(tmp_path, cache_dir, data_root, trained_ckpt, inception_weights):
    base = eval_overrides(trained_ckpt, data_root, inception_weights)
    _fails(tmp_path, cache_dir, base + ["mask_func=zigzag"], "zigzag", "cosine", "linear", "square")
    _fails(tmp_path, cache_dir, base + ["total_iter=0"], "total_iter")
    _fails(tmp_path, cache_dir, base + ["temperature=-0.5"], "temperature", ">= 0")


def test_bad_test_folders(tmp_path, cache_dir, data_root, trained_ckpt, inception_weights):
    root = tmp_path / "data"
    for split, n in (("train", 2), ("val", 2), ("masked_image", 4), ("mask64", 4), ("gt", 4)):
        (root / split).mkdir(parents=True)
        for f in sorted((data_root / split).iterdir())[:n]:
            shutil.copy(f, root / split / f.name)
    base = eval_overrides(trained_ckpt, data_root, inception_weights) + [f"data.root={root}"]
    out = tmp_path / "run"
    (root / "mask64" / "mask_003.png").unlink()
    _fails(out, cache_dir, base, "image_003.png")
    shutil.rmtree(root / "mask64")
    _fails(out, cache_dir, base, "mask64")


def test_missing_checkpoint_on_the_command_line_is_one_line(tmp_path):
    proc = run_cli("eval.py", "trainer=cpu", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: ckpt_path is required: python eval.py ckpt_path=/path/to/last.ckpt")


def test_other_sweet_spots_come_from_memory_and_equal_a_fresh_decode(tmp_path, cache_dir, data_root,
                                                                    trained_ckpt, inception_weights):
    from maskgit.modules.inpainting import _STEP_MEMO

    args = eval_overrides(trained_ckpt, data_root, inception_weights, 8) + [
        "total_iter=4", "metrics.fid.enabled=false", "pictures.num_images=0", "pictures.grid_images=0"]
    _STEP_MEMO.clear()
    full = evaluate(compose_config("eval", args, tmp_path / "full", cache_dir))
    served = evaluate(compose_config("eval", args + ["sweet_spot=1"], tmp_path / "served", cache_dir))
    _STEP_MEMO.clear()
    fresh = evaluate(compose_config("eval", args + ["sweet_spot=1"], tmp_path / "fresh", cache_dir))
    assert full["decoded_now"] == 8 and served["decoded_now"] == 0 and fresh["decoded_now"] == 8
    assert served["metrics"] == fresh["metrics"] != full["metrics"]
    for i in range(8):
        assert torch.equal(read_image(tmp_path / "served" / "test_results" / f"image_{i:03d}.png"),
                           read_image(tmp_path / "fresh" / "test_results" / f"image_{i:03d}.png"))


SWEEP_POINTS = [("cosine", 4, s) for s in (1, 2, 3, 4)] + [("linear", 3, s) for s in (1, 2, 3)]
SWEEP_ORDERS = {
    "ascending": SWEEP_POINTS,
    "descending": SWEEP_POINTS[::-1],
    # sweet spots of one decoding apart, between other schedules and step counts, the full one in between
    "interleaved": [("cosine", 4, 2), ("linear", 3, 1), ("cosine", 4, 4), ("cosine", 4, 1),
                    ("linear", 3, 3), ("cosine", 4, 3), ("linear", 3, 2)],
}


@pytest.mark.slow
def test_a_sweet_spot_sweep_in_any_order_gives_each_point_its_fresh_result(tmp_path, cache_dir, data_root,
                                                                          trained_ckpt, inception_weights):
    """The step memory never hands back fewer steps than asked (it once crashed at the second point of
    sweet_spot=0..3): every order a sweep can take gives each point what it gives decoded alone, and
    each decoding runs once per order."""
    from maskgit.modules.inpainting import _STEP_MEMO

    args = eval_overrides(trained_ckpt, data_root, inception_weights, 8) + [
        "metrics.fid.enabled=false", "pictures.num_images=0", "pictures.grid_images=0"]

    def point(mask_func: str, total_iter: int, sweet_spot: int, out: str) -> dict:
        overrides = [f"mask_func={mask_func}", f"total_iter={total_iter}", f"sweet_spot={sweet_spot}"]
        return evaluate(compose_config("eval", args + overrides, tmp_path / out, cache_dir))

    alone = {}
    for p in SWEEP_POINTS:
        _STEP_MEMO.clear()
        alone[p] = point(*p, f"alone-{'-'.join(map(str, p))}")["metrics"]
    # seven points, six results: one step takes step 1's codes whatever the schedule and T
    assert len({json.dumps(m, sort_keys=True) for m in alone.values()}) == len(SWEEP_POINTS) - 1
    assert alone[("cosine", 4, 1)] == alone[("linear", 3, 1)]
    for name, order in SWEEP_ORDERS.items():
        _STEP_MEMO.clear()
        decoded = 0
        for i, p in enumerate(order):
            report = point(*p, f"{name}-{i}")
            assert report["metrics"] == alone[p], (name, p)
            decoded += report["decoded_now"]
        assert decoded == 2 * 8, name  # one pass per (mask_func, total_iter), whichever point came first


def test_a_run_stopped_before_its_results_are_complete_publishes_no_pictures(
        tmp_path, cache_dir, data_root, trained_ckpt, inception_weights, monkeypatch):
    """Progression pictures are written while decoding, into pictures.partial: a run that dies
    before its results are complete leaves no pictures/, no test_results/ and no metrics.json."""
    import maskgit.tasks.runner as runner

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "publish", killed)
    args = eval_overrides(trained_ckpt, data_root, inception_weights, 4) + ["metrics.fid.enabled=false"]
    with pytest.raises(KeyboardInterrupt):
        evaluate(compose_config("eval", args, tmp_path, cache_dir))
    assert list((tmp_path / "pictures.partial").glob("progression_*.png"))  # written while decoding
    assert not (tmp_path / "pictures").exists() and not (tmp_path / "test_results").exists()
    assert not (tmp_path / "metrics.json").exists()
