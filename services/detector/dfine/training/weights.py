"""Initial weights for fine-tuning: an official or motpipe D-FINE checkpoint (EMA weights when present),
loaded strictly, optionally with new classes.

`--classes player=person,ball="sports ball"` makes a model with those classes and initialises each new
class's rows of every class head — `enc_score_head`, every `dec_score_head.i` and the denoising label
embedding — from the named source class of the checkpoint's dataset (names or ids), instead of from
scratch. `reinit=True` gives the official `-t` behaviour for a changed class count: those rows keep the
fresh official initialisation (score bias -log(99), label embedding N(0, 1)). Everything else loads
unchanged. The class map is returned for the checkpoint (`motpipe detect` prints the names).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from shared.errors import InputError

from ..configs import NUM_CLASSES, dfine_config
from ..detector import check_state, read_checkpoint
from ..model import DFINE

PRIOR_BIAS = -math.log((1 - 0.01) / 0.01)


@dataclass
class InitResult:
    model: DFINE
    classes: list[str]  # names of the model's classes (empty: the dataset's own indices)
    source: dict[str, int] = field(default_factory=dict)  # new class -> the checkpoint class it started from
    report: str = ""

    def meta(self, size: str, dataset: str) -> dict:
        return {
            "size": size,
            "dataset": dataset,
            "num_classes": self.model.num_classes,
            "classes": self.classes,
            "source_classes": self.source,
        }


def class_heads(model: DFINE) -> list[nn.Module]:
    head = model.decoder
    return [head.enc_score_head, *head.dec_score_head]


def parse_class_map(text: str, dataset: str, names: list[str]) -> list[tuple[str, int]]:
    """`player=person,ball="sports ball"` -> [(player, 0), (ball, 32)]; a source is an id or a class name of
    the checkpoint (its own names, else the dataset's)."""
    from services.detector.registry import CLASS_NAMES

    known = {n.lower().replace(" ", "_"): i for i, n in enumerate(names)} or CLASS_NAMES.get(
        f"dfine/{dataset}", CLASS_NAMES["dfine"]
    )
    out = []
    for item in re.findall(r'(?:[^,"]|"[^"]*")+', text):
        new, sep, source = item.partition("=")
        new, source = new.strip().strip('"'), source.strip().strip('"')
        if not sep or not new or not source:
            raise InputError(f'not NEW=SOURCE: {item!r} (e.g. player=person,ball="sports ball")', field="classes")
        key = source.lower().replace(" ", "_")
        if source.isdigit():
            index = int(source)
        elif key in known:
            index = known[key]
        else:
            hint = ", ".join(sorted(known)[:12]) or "ids only for this dataset"
            raise InputError(
                f"unknown source class {source!r} for {dataset} (known: {hint}, …; or give an id)", field="classes"
            )
        out.append((new, index))
    if not out:
        raise InputError("--classes maps no class", field="classes")
    if len({n for n, _ in out}) != len(out):
        raise InputError("--classes names a new class twice", field="classes")
    return out


def _fresh_class_rows(model: DFINE) -> None:
    """The official initialisation of the class-dependent tensors (score-head biases, label embedding)."""
    with torch.no_grad():
        for head in class_heads(model):
            head.bias.fill_(PRIOR_BIAS)
        embed = model.decoder.denoising_class_embed.weight
        nn.init.normal_(embed[:-1])
        embed[-1].zero_()


def build_from_weights(
    weights: Path, size: str, dataset: str, classes: str | None = None, reinit: bool = False
) -> InitResult:
    state, meta = read_checkpoint(weights)
    if dataset not in NUM_CLASSES:
        raise InputError(f"unknown dataset {dataset!r}; known: {sorted(NUM_CLASSES)}", field="dataset")
    try:
        cfg = dfine_config(size, dataset)
    except ValueError as exc:
        raise InputError(str(exc), field="size") from None
    if meta.get("size") and meta["size"] != size:
        raise InputError(f"the checkpoint is a D-FINE {meta['size'].upper()}, not {size.upper()}", source=str(weights))
    if meta.get("num_classes"):
        cfg["num_classes"] = int(meta["num_classes"])
    base = DFINE(cfg)
    check_state(base, state, f"{size.upper()}/{dataset} ({cfg['num_classes']} classes)", weights)
    base.load_state_dict(state, strict=True)
    names = list(meta.get("classes") or [])
    if not classes:
        report = f"weights {weights.name}: D-FINE {size.upper()}, {cfg['num_classes']} classes, loaded unchanged"
        return InitResult(base, names, {}, report)

    mapping = parse_class_map(classes, dataset, names)
    bad = [(n, i) for n, i in mapping if not 0 <= i < cfg["num_classes"]]
    if bad:
        raise InputError(
            f"source class id(s) {bad} outside the checkpoint's 0..{cfg['num_classes'] - 1}", field="classes"
        )
    new_cfg = {**cfg, "num_classes": len(mapping)}
    model = DFINE(new_cfg)
    fresh = model.state_dict()
    shared = {k: v for k, v in state.items() if k in fresh and tuple(v.shape) == tuple(fresh[k].shape)}
    model.load_state_dict(shared, strict=False)
    _fresh_class_rows(model)
    source = {n: i for n, i in mapping}
    if not reinit:
        rows = torch.tensor([i for _, i in mapping])
        with torch.no_grad():
            for new_head, old_head in zip(class_heads(model), class_heads(base), strict=True):
                new_head.weight.copy_(old_head.weight[rows])
                new_head.bias.copy_(old_head.bias[rows])
            old_embed = base.decoder.denoising_class_embed.weight
            model.decoder.denoising_class_embed.weight.copy_(torch.cat([old_embed[rows], old_embed[-1:]]))
        how = ", ".join(f"{n} <- {i}" for n, i in mapping)
        report = f"weights {weights.name}: D-FINE {size.upper()}, classes {how} (class rows copied from the source)"
    else:
        source = {}
        report = f"weights {weights.name}: D-FINE {size.upper()}, {len(mapping)} new classes initialised afresh"
    return InitResult(model, [n for n, _ in mapping], source, report)
