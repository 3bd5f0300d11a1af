"""`--device` / `MOTPIPE_DEVICE` naming a CUDA device this machine lacks is refused in one line naming the
field (a CPU node of a cluster given `--device cuda`), before any work, instead of torch's driver error."""

import pytest
import torch

from services.gateway.cli import main
from shared.errors import InputError
from shared.settings import pick_device
from shared.synth import render_scene

ABSENT = f"cuda:{torch.cuda.device_count() if torch.cuda.is_available() else 0}"  # one past the last device


def test_pick_device_refuses_a_cuda_device_that_is_not_here():
    with pytest.raises(InputError, match=rf"field 'device': {ABSENT}: this machine has (no CUDA device|CUDA devices)"):
        pick_device(ABSENT)
    with pytest.raises(InputError, match="field 'device'"):
        pick_device("cuda:first" if torch.cuda.is_available() else "cuda")
    assert pick_device("cpu") == "cpu"
    assert pick_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")


def test_a_command_given_such_a_device_says_so_and_writes_nothing(tmp_path, capsys):
    scene = render_scene(tmp_path / "clip", frames=2, seed=1, size=(160, 96))
    out = tmp_path / "db.json"
    assert main(["detect", str(scene.video), "--detector", "motion", "--device", ABSENT, "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("motpipe detect: error: field 'device'") and len(error.splitlines()) == 1, error
    assert not out.exists()
