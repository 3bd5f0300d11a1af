"""What a training job records when a step has no finite grad norm (float16 AMP: the GradScaler skips the
steps whose gradients overflowed, and their norm is inf). Found on a GPU run: the epoch mean became inf,
job.json got `null` there and could no longer be read, so the job stayed `running` after it had failed."""

import json
import math

from services.trainer.common import StepWriter
from services.trainer.jobs import read_job, update_job, write_job
from shared.schemas import EpochRecord, JobRecord
from shared.training import EpochMeans, StepLog


def _strict(text: str):
    def refuse(name):
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def test_epoch_means_skip_steps_without_a_finite_value():
    means = EpochMeans()
    for loss, norm in ((4.0, math.inf), (2.0, 3.0), (3.0, 5.0)):
        means.add({"loss": loss, "grad_norm": norm})
    assert means.means() == {"loss": 3.0, "grad_norm": 4.0}
    means = EpochMeans()
    means.add({"loss": 1.0, "grad_norm": math.inf})
    assert means.means() == {"loss": 1.0}  # no finite norm in the epoch: none recorded


def test_job_record_with_an_infinite_value_stays_readable(tmp_path):
    write_job(tmp_path, JobRecord(job="j"))

    def add_epoch(record: JobRecord) -> None:
        losses = {"loss": 2.0, "grad_norm": math.inf}
        record.epochs.append(EpochRecord(epoch=0, steps=4, losses=losses, val={"mAP": math.nan, "AR": 0.5}))

    update_job(tmp_path, add_epoch)
    record = read_job(tmp_path)
    assert record.epochs[0].losses == {"loss": 2.0} and record.epochs[0].val == {"AR": 0.5}
    _strict((tmp_path / "job.json").read_text())


def test_step_log_writes_null_for_an_infinite_grad_norm(tmp_path):
    writer = StepWriter(tmp_path, tmp_path / "contract.jsonl", tensorboard=False, resume=False)
    writer.step(StepLog(1, 0, {"loss_vfl": 1.5}, 1.5, math.inf, [1e-4]))
    writer.step(StepLog(2, 0, {"loss_vfl": 1.25}, 1.25, 2.0, [1e-4]))
    writer.close()
    steps = [_strict(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [s["grad_norm"] for s in steps] == [None, 2.0]
    from datetime import UTC, datetime

    when = datetime.fromisoformat(steps[0]["time"].replace("Z", "+00:00"))  # UTC, to the millisecond
    assert when.utcoffset().total_seconds() == 0 and abs((datetime.now(UTC) - when).total_seconds()) < 60
    contract = [_strict(line) for line in (tmp_path / "contract.jsonl").read_text().splitlines()]
    assert contract[0] == {"loss_vfl": 1.5, "loss": 1.5, "grad_norm": None}


def test_one_line_an_epoch_says_loss_time_per_step_and_eta():
    from types import SimpleNamespace

    from services.trainer.common import epoch_line

    result = SimpleNamespace(epoch=1, steps=20, mean_losses={"loss": 24.1734})
    val = {"HOTA": 0.61234, "IDSW": 3.0, "ball/HOTA": 0.2}
    line = epoch_line(result, planned_epochs=12, done=40, planned_steps=240, seconds=10.0, val=val)
    assert line == "epoch 2/12: loss 24.17, 0.50 s/step, ETA 1m40s, HOTA 0.6123, IDSW 3"
