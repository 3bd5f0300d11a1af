"""D-FINE's criterion (TRAINING_SPEC §4): VFL, L1/GIoU, fine-grained localisation (FGL) and decoupled
distillation (DDF) on the last layer, every auxiliary layer, the pre-decoder and encoder outputs and the
denoising outputs, with the official matchings, normalisers and weights. Terms come back already weighted,
under the official names; NaN terms count as 0 (as the official training loop does).

Where the official arithmetic rounds through float32 even in a float64 run (the FGL IoU weight, the DDF
positive/negative counts) we round the same way, so a float64 run equals the official float64 vectors.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

from .forward import bin_values
from .matcher import HungarianMatcher, Matching, box_iou_pairs, cxcywh_to_xyxy, giou_pairs, union_matching

WEIGHTS = {"loss_vfl": 1.0, "loss_bbox": 5.0, "loss_giou": 2.0, "loss_fgl": 0.15, "loss_ddf": 1.5}


def _world_mean(count: int, device) -> float:
    value = torch.as_tensor([count], dtype=torch.float, device=device)
    world = 1
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(value)
        world = dist.get_world_size()
    return torch.clamp(value / world, min=1).item()


def _index(matching: Matching) -> tuple[torch.Tensor, torch.Tensor]:
    batch = torch.cat([torch.full_like(src, i) for i, (src, _) in enumerate(matching)])
    return batch, torch.cat([src for src, _ in matching])


def _gt(targets: list[dict], matching: Matching, key: str) -> torch.Tensor:
    return torch.cat([t[key][j] for t, (_, j) in zip(targets, matching, strict=True)])


class DFINECriterion:
    def __init__(
        self,
        num_classes: int,
        reg_max: int = 32,
        alpha: float = 0.75,
        gamma: float = 2.0,
        weights: dict[str, float] | None = None,
        matcher: HungarianMatcher | None = None,
    ):
        self.num_classes, self.reg_max, self.alpha, self.gamma = num_classes, reg_max, alpha, gamma
        self.weights = dict(weights or WEIGHTS)
        self.matcher = matcher or HungarianMatcher()
        self.last_matchings: dict[str, Matching] = {}  # what the last call matched (tests compare them)

    # -- terms --------------------------------------------------------------------------------------------
    def vfl(self, out: dict, targets: list[dict], matching: Matching, num_boxes: float) -> torch.Tensor:
        idx = _index(matching)
        gt = _gt(targets, matching, "boxes")
        iou, _ = box_iou_pairs(cxcywh_to_xyxy(out["pred_boxes"][idx]), cxcywh_to_xyxy(gt))
        logits = out["pred_logits"]
        classes = torch.full(logits.shape[:2], self.num_classes, dtype=torch.int64, device=logits.device)
        classes[idx] = _gt(targets, matching, "labels")
        onehot = F.one_hot(classes, self.num_classes + 1)[..., :-1]
        score = torch.zeros(logits.shape[:2], dtype=logits.dtype, device=logits.device)
        score[idx] = iou.detach().to(score.dtype)
        score = score.unsqueeze(-1) * onehot
        weight = self.alpha * torch.sigmoid(logits).detach().pow(self.gamma) * (1 - onehot) + score
        loss = F.binary_cross_entropy_with_logits(logits, score, weight=weight, reduction="none")
        return loss.mean(1).sum() * logits.shape[1] / num_boxes

    def boxes(self, out: dict, targets: list[dict], matching: Matching, num_boxes: float) -> dict[str, torch.Tensor]:
        idx = _index(matching)
        src, gt = out["pred_boxes"][idx], _gt(targets, matching, "boxes")
        return {
            "loss_bbox": F.l1_loss(src, gt, reduction="none").sum() / num_boxes,
            "loss_giou": (1 - giou_pairs(cxcywh_to_xyxy(src), cxcywh_to_xyxy(gt))).sum() / num_boxes,
        }

    def local(
        self,
        out: dict,
        targets: list[dict],
        matching: Matching,
        num_boxes: float,
        dn: bool,
        state: dict,
        temperature: float = 5.0,
    ) -> dict[str, torch.Tensor]:
        """FGL on matched queries and, for layers with a teacher, DDF over all queries."""
        losses: dict[str, torch.Tensor] = {}
        if "pred_corners" not in out:
            return losses
        idx = _index(matching)
        gt = _gt(targets, matching, "boxes")
        corners = out["pred_corners"][idx].reshape(-1, self.reg_max + 1)
        key = "fgl_dn" if dn else "fgl"
        if key not in state:  # targets from the first output seen; every layer shares its reference boxes
            state[key] = edge_targets(
                out["ref_points"][idx].detach(), cxcywh_to_xyxy(gt), self.reg_max, out["reg_scale"], out["up"]
            )
        target, w_right, w_left = state[key]
        iou, _ = box_iou_pairs(cxcywh_to_xyxy(out["pred_boxes"][idx]), cxcywh_to_xyxy(gt))
        weight = iou.unsqueeze(-1).repeat(1, 4).reshape(-1).detach().float()  # official: weight.float()
        left = target.long()
        ce = F.cross_entropy(corners, left, reduction="none") * w_left.reshape(-1) + F.cross_entropy(
            corners, left + 1, reduction="none"
        ) * w_right.reshape(-1)
        losses["loss_fgl"] = (ce * weight).sum() / num_boxes

        if "teacher_corners" in out:
            pred = out["pred_corners"].reshape(-1, self.reg_max + 1)
            teacher = out["teacher_corners"].reshape(-1, self.reg_max + 1)
            if torch.equal(pred, teacher):  # the last dn layer is its own teacher: an exact 0 in the graph
                losses["loss_ddf"] = pred.sum() * 0
                return losses
            w = torch.sigmoid(out["teacher_logits"]).max(dim=-1)[0]
            mask = torch.zeros_like(w, dtype=torch.bool)
            mask[idx] = True
            mask = mask.unsqueeze(-1).repeat(1, 1, 4).reshape(-1)
            w[idx] = iou.reshape_as(w[idx]).to(w.dtype)
            w = w.unsqueeze(-1).repeat(1, 1, 4).reshape(-1).detach()
            kl = F.kl_div(
                F.log_softmax(pred / temperature, dim=1),
                F.softmax(teacher.detach() / temperature, dim=1),
                reduction="none",
            ).sum(-1)
            loss = w * (temperature**2) * kl
            if not dn:  # denoising layers reuse the counts of the last matching-query layer (as officially)
                scale = 8 / out["pred_boxes"].shape[0]
                state["npos"] = (mask.sum() * scale) ** 0.5
                state["nneg"] = ((~mask).sum() * scale) ** 0.5
            m1 = loss[mask].mean() if mask.any() else 0
            m2 = loss[~mask].mean() if (~mask).any() else 0
            losses["loss_ddf"] = (m1 * state["npos"] + m2 * state["nneg"]) / (state["npos"] + state["nneg"])
        return losses

    # -- one output ---------------------------------------------------------------------------------------
    def _terms(
        self,
        out,
        targets,
        own: Matching,
        go: Matching,
        n: float,
        n_go: float,
        dn: bool,
        state: dict,
        suffix: str,
        local: bool = True,
    ) -> dict[str, torch.Tensor]:
        terms = {"loss_vfl": self.vfl(out, targets, own, n)}
        terms.update(self.boxes(out, targets, go, n_go))
        if local:
            terms.update(self.local(out, targets, go, n_go, dn, state))
        return {k + suffix: v * self.weights[k] for k, v in terms.items()}

    def __call__(self, outputs: dict, targets: list[dict]) -> dict[str, torch.Tensor]:
        device = outputs["pred_logits"].device
        main = self.matcher({"pred_logits": outputs["pred_logits"], "pred_boxes": outputs["pred_boxes"]}, targets)
        aux = [self.matcher(o, targets) for o in outputs["aux_outputs"]]
        pre = self.matcher(outputs["pre_outputs"], targets)
        enc = [self.matcher(o, targets) for o in outputs["enc_aux_outputs"]]
        go = union_matching(main, aux + [pre] + enc)
        self.last_matchings = {
            "main": main,
            **{f"aux_{i}": m for i, m in enumerate(aux)},
            "pre": pre,
            **{f"enc_{i}": m for i, m in enumerate(enc)},
            "go": go,
        }
        n_go = _world_mean(sum(len(rows) for rows, _ in go), device)
        n = _world_mean(sum(len(t["labels"]) for t in targets), device)
        state: dict = {}
        up, reg_scale = outputs["up"], outputs["reg_scale"]

        losses = self._terms(outputs, targets, main, go, n, n_go, False, state, "")
        for i, (out, own) in enumerate(zip(outputs["aux_outputs"], aux, strict=True)):
            losses.update(
                self._terms(
                    {**out, "up": up, "reg_scale": reg_scale}, targets, own, go, n, n_go, False, state, f"_aux_{i}"
                )
            )
        losses.update(self._terms(outputs["pre_outputs"], targets, pre, go, n, n_go, False, state, "_pre", False))
        for i, (out, own) in enumerate(zip(outputs["enc_aux_outputs"], enc, strict=True)):
            losses.update(self._terms(out, targets, own, go, n, n_go, False, state, f"_enc_{i}", False))
        if "dn_outputs" in outputs:
            meta = outputs["dn_meta"]
            fixed = dn_matching(meta.positive_idx, meta.num_group, targets)
            n_dn = n * meta.num_group
            for i, out in enumerate(outputs["dn_outputs"]):
                losses.update(
                    self._terms(
                        {**out, "up": up, "reg_scale": reg_scale},
                        targets,
                        fixed,
                        fixed,
                        n_dn,
                        n_dn,
                        True,
                        state,
                        f"_dn_{i}",
                    )
                )
            losses.update(
                self._terms(outputs["dn_pre_outputs"], targets, fixed, fixed, n_dn, n_dn, True, state, "_dn_pre", False)
            )
        return {k: torch.nan_to_num(v) for k, v in losses.items()}


def dn_matching(positive_idx: list[torch.Tensor], groups: int, targets: list[dict]) -> Matching:
    out = []
    for i, t in enumerate(targets):
        n = len(t["labels"])
        device = t["labels"].device
        if n:
            out.append((positive_idx[i].to(device), torch.arange(n, dtype=torch.int64, device=device).tile(groups)))
        else:
            empty = torch.zeros(0, dtype=torch.int64, device=device)
            out.append((empty, empty))
    return out


@torch.no_grad()
def edge_targets(
    ref: torch.Tensor, gt_xyxy: torch.Tensor, reg_max: int, reg_scale: torch.Tensor, up: torch.Tensor, eps: float = 0.1
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each matched edge's target distance as a fractional bin (left bin index + interpolation weights)."""
    reg_scale = abs(reg_scale)
    left = (ref[:, 0] - gt_xyxy[:, 0]) / (ref[..., 2] / reg_scale + 1e-16) - 0.5 * reg_scale
    top = (ref[:, 1] - gt_xyxy[:, 1]) / (ref[..., 3] / reg_scale + 1e-16) - 0.5 * reg_scale
    right = (gt_xyxy[:, 2] - ref[:, 0]) / (ref[..., 2] / reg_scale + 1e-16) - 0.5 * reg_scale
    bottom = (gt_xyxy[:, 3] - ref[:, 1]) / (ref[..., 3] / reg_scale + 1e-16) - 0.5 * reg_scale
    d = torch.stack([left, top, right, bottom], -1).reshape(-1)
    values = bin_values(reg_max, up, reg_scale)
    index = ((values.unsqueeze(0) - d.unsqueeze(1)) <= 0).sum(1) - 1
    index = index.to(d.dtype)  # official: .float(); the float64 vectors keep the training dtype
    w_right, w_left = torch.zeros_like(index), torch.zeros_like(index)
    inside = (index >= 0) & (index < reg_max)
    at = index[inside].long()
    dl = torch.abs(d[inside] - values[at])
    dr = torch.abs(values[at + 1] - d[inside])
    w_right[inside] = dl / (dl + dr)
    w_left[inside] = 1.0 - w_right[inside]
    below = index < 0
    w_right[below], w_left[below], index[below] = 0.0, 1.0, 0.0
    above = index >= reg_max
    w_right[above], w_left[above], index[above] = 1.0, 0.0, reg_max - 0.1
    return index.clamp(min=0, max=reg_max - eps).reshape(-1), w_right, w_left
