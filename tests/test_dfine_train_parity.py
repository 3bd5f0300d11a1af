"""D-FINE training parity with the official code (`../shared/reference/dfine_train/vectors_train_n*`): one
iteration on the reference weights and batch in float64 — every loss term, the matchings (per output and
the union), the denoising groups, the gradient norm and gradients, the learning rates, and the model and
EMA state after the step — within the spec's tolerances (TRAINING_SPEC §10)."""

import json
import math

import numpy as np
import pytest
import torch

from services.detector.dfine.configs import dfine_config
from services.detector.dfine.model import DFINE
from services.detector.dfine.training.criterion import DFINECriterion
from services.detector.dfine.training.denoising import make_groups
from services.detector.dfine.training.forward import train_forward
from services.detector.dfine.training.optim import LinearWarmup, ModelEMA, OptimConfig, build_optimizer
from services.detector.dfine.training.step import StepRunner

F64 = ["n_f64", "n_dn_f64", "n_nc2_f64", "n_prior_f64"]
CONSTANTS = ("num_batches_tracked", "reg_scale", ".up", "anchors", "valid_mask", "num_points_scale")


def load(shared_dir, name):
    folder = shared_dir / "reference" / "dfine_train"
    return np.load(folder / f"vectors_train_{name}.npz"), json.loads(
        (folder / f"vectors_train_{name}.json").read_text()
    )


def reference_model(fill, vectors, meta) -> DFINE:
    """N/COCO with the reference fill; constants keep their initial values or the stored ones; the prior
    vector sets the score biases to -log(99) in float32 before the cast (as the official harness)."""
    cfg = dfine_config("n", "coco")
    cfg["num_classes"] = meta["num_classes"]
    model = DFINE(cfg)
    state = {}
    for name, value in model.state_dict().items():
        if f"const/{name}" in vectors.files:
            state[name] = torch.from_numpy(vectors[f"const/{name}"])
        elif name.endswith(CONSTANTS):
            state[name] = value
        else:
            state[name] = torch.from_numpy(fill.fill_value(name, tuple(value.shape), meta["salt"]))
    model.load_state_dict(state, strict=True)
    if meta["prior_bias"]:
        with torch.no_grad():
            for head in [model.decoder.enc_score_head, *model.decoder.dec_score_head]:
                head.bias.fill_(-math.log((1 - 0.01) / 0.01))
    return model.to(torch.float64 if meta["dtype"] == "float64" else torch.float32).train()


def reference_batch(fill, meta):
    images = np.stack([fill.make_image(640, 640, seed=100 + i) for i in range(2)])
    dtype = torch.float64 if meta["dtype"] == "float64" else torch.float32
    images = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255).to(dtype)  # uint8 -> f32 /255 -> dtype
    targets = [
        {"boxes": torch.tensor(t["boxes_cxcywh"], dtype=torch.float32).to(dtype), "labels": torch.tensor(t["labels"])}
        for t in meta["targets"]
    ]
    return images, targets


def groups(meta, targets):
    if not meta["num_denoising"]:
        return None
    torch.manual_seed(meta["torch_seed"])
    return make_groups(targets, meta["num_classes"], 300, meta["num_denoising"])


@pytest.mark.parametrize("name", F64)
def test_losses_and_matchings_equal_the_official_float64_vectors(shared_dir, param_fill, name):
    vectors, meta = load(shared_dir, name)
    model = reference_model(param_fill, vectors, meta)
    images, targets = reference_batch(param_fill, meta)
    criterion = DFINECriterion(meta["num_classes"])
    outputs = train_forward(model, images, groups(meta, targets))
    losses = criterion(outputs, targets)

    assert list(losses) == list(meta["losses"]), "the official terms, in the official order"
    for key, expected in meta["losses"].items():
        assert losses[key].item() == pytest.approx(expected, rel=1e-7, abs=4e-10), key
    assert sum(losses.values()).item() == pytest.approx(meta["loss_total"], rel=1e-7)
    for key, matching in criterion.last_matchings.items():
        for i, (rows, cols) in enumerate(matching):
            expected = vectors[f"match/{key}/img{i}"]
            assert rows.tolist() == expected[0].tolist() and cols.tolist() == expected[1].tolist(), (key, i)
    assert sum(len(r) for r, _ in criterion.last_matchings["go"]) == meta["num_boxes_go"]
    for key in ("pred_logits", "pred_boxes", "pred_corners", "ref_points"):  # stored as float32
        np.testing.assert_allclose(outputs[key].detach().numpy(), vectors[f"out/{key}"], atol=2e-6, rtol=1e-6)
    np.testing.assert_allclose(outputs["pre_outputs"]["pred_boxes"].detach().numpy(), vectors["out/pre_boxes"],
                               atol=1e-6)  # fmt: skip
    np.testing.assert_allclose(outputs["enc_aux_outputs"][0]["pred_boxes"].detach().numpy(), vectors["out/enc_boxes"],
                               atol=1e-6)  # fmt: skip


def test_denoising_groups_equal_the_official_draws(shared_dir, param_fill):
    vectors, meta = load(shared_dir, "n_dn_f64")
    _, targets = reference_batch(param_fill, meta)
    dn = groups(meta, targets)
    assert dn.num_group == meta["dn_num_group"]
    assert np.array_equal(dn.labels.numpy(), vectors["dn/dn_query_class"])
    # the same draws; the float32 inverse sigmoid of them may round one unit apart with MKL's vector log
    np.testing.assert_array_max_ulp(dn.boxes_unact.numpy(), vectors["dn/dn_query_bbox_unact"], maxulp=1)
    assert np.array_equal(dn.attn_mask.numpy(), vectors["dn/dn_attn_mask"])
    assert np.array_equal(torch.cat(dn.positive_idx).numpy(), vectors["dn/dn_positive_idx"])


@pytest.mark.parametrize("name", F64)
def test_one_step_gradients_lr_model_and_ema_equal_the_official(shared_dir, param_fill, name):
    vectors, meta = load(shared_dir, name)
    model = reference_model(param_fill, vectors, meta)
    images, targets = reference_batch(param_fill, meta)
    optimizer = build_optimizer(model, OptimConfig("n"))
    warmup, ema = LinearWarmup(optimizer, 500), ModelEMA(model)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx(meta["lr_used_step0"], rel=1e-12)
    expected_groups = [(g["n_params"], g["n_elems"]) for g in meta["param_groups"]]
    ours = [(len(g["params"]), sum(p.numel() for p in g["params"])) for g in optimizer.param_groups]
    if not meta["num_denoising"]:  # the official model has no denoising embedding then; ours keeps it (no grad)
        embed = model.decoder.denoising_class_embed.weight.numel()
        ours[3] = (ours[3][0] - 1, ours[3][1] - embed)
    assert ours == expected_groups

    torch.manual_seed(meta["torch_seed"])
    runner = StepRunner(model, DFINECriterion(meta["num_classes"]), optimizer, warmup, ema, 0.1, meta["num_denoising"])
    result = runner.step(images, targets)
    assert result.loss == pytest.approx(meta["loss_total"], rel=1e-7)
    assert result.grad_norm == pytest.approx(meta["grad_total_norm_pre_clip"], rel=1e-9)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx(meta["lr_after_warmup_step"], rel=1e-12)
    assert ema.updates == 1

    params = dict(model.named_parameters())
    post = vectors["grad_post_clip/sum_abs"]
    largest = np.abs(post[:, 1]).max()
    for i, name_ in enumerate(vectors["names/params"]):
        if post[i, 1] < 1e-6 * largest:  # gradients that are ~0 in truth are noise (spec §10)
            continue
        grad = params[name_].grad.double()
        got = [grad.sum().item(), grad.abs().sum().item()]
        assert got[1] == pytest.approx(post[i, 1], rel=1e-6), name_
    state, ema_state = model.state_dict(), ema.module.state_dict()
    for i, name_ in enumerate(vectors["names/state"]):
        if not state[name_].is_floating_point():
            continue
        for values, ref in (
            (state[name_], vectors["model_after/sum_abs"][i]),
            (ema_state[name_], vectors["ema_after/sum_abs"][i]),
        ):
            got = [values.double().sum().item(), values.double().abs().sum().item()]
            assert got == pytest.approx(list(ref), rel=1e-9, abs=1e-9), name_
