"""train.report_to: TensorBoard, wandb (offline) and MLflow (a local file store) get every metrics row at its
step and the resolved recipe, and a resumed run continues the same tracker runs. Nothing reaches the network."""

from __future__ import annotations

import json
import math

import pytest
from recipe_cases import VALID, assert_reported

from minillm_distill.train.trackers import flat_config, missing_library, numeric_metrics

pytest.importorskip("tensorboard")
pytest.importorskip("wandb")
pytest.importorskip("mlflow")


def test_rows_are_flattened_to_numbers():
    row = {"step": 3, "loss": 0.5, "skipped": False, "rollout": {"len": 4, "deep": {"x": 1.5}}, "note": "a"}
    row["bad"] = math.nan
    assert numeric_metrics(row) == {"loss": 0.5, "skipped": 0.0, "rollout/len": 4.0, "rollout/deep/x": 1.5}
    assert flat_config({"train": {"lr": 0.001, "betas": [0.9, 0.99]}, "name": "x", "teacher": None}) == {
        "train.lr": "0.001",
        "train.betas": "[0.9, 0.99]",
        "name": "x",
        "teacher": "null",
    }


def test_missing_tracker_library_is_a_recipe_error_naming_the_extra(cli, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    assert "minillm-distill[trackers]" in (missing_library("wandb") or "")
    path = tmp_path / "r.yaml"
    path.write_text(
        VALID.replace("  micro_batch_size: 4\n", "  micro_batch_size: 4\n  report_to: [tensorboard, wandb]\n")
    )
    res = cli("recipes", "validate", path)
    assert res.code == 3
    assert_reported(
        res.output, "train.report_to", "'wandb' package is not installed", "pip install 'minillm-distill[trackers]'"
    )
    path.write_text(VALID.replace("  micro_batch_size: 4\n", "  micro_batch_size: 4\n  report_to: [neptune]\n"))
    res = cli("recipes", "validate", path)
    assert res.code == 3 and "train.report_to" in res.output


ROWS = [
    {"step": step, "loss": 1.0 / step, "lr": 1e-3 * step, "skipped": False, "rollout": {"reward": 0.1 * step}}
    for step in range(1, 5)
]
CONFIG = {"name": "tiny", "train": {"total_steps": 4, "lr": 0.001}, "divergence": {"name": "fkl"}}


@pytest.fixture
def offline(tmp_path, monkeypatch):
    store = f"file:{tmp_path / 'mlruns'}"
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_DIR", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps the file store behind this switch
    return store


@pytest.mark.slow
def test_trackers_get_every_row_and_resume_continues_the_same_runs(tmp_path, offline):
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter
    from wandb_records import read_run

    from minillm_distill.train.trackers import open_trackers

    names = ["tensorboard", "wandb", "mlflow"]
    run = tmp_path / "run"
    run.mkdir()
    # a first run that stops after step 2 (its checkpoint) ...
    trackers = open_trackers(names, run, run_name="tiny", config=CONFIG, resume_step=None, enabled=True)
    for row in ROWS[:2]:
        trackers.log(row)
    trackers.close()
    state = json.loads((run / "trackers.json").read_text())
    # ... having logged a step-3 value after it (a kill before the next checkpoint), which resume drops
    with SummaryWriter(str(run / "tensorboard")) as stray:
        stray.add_scalar("loss", 999.0, global_step=3)
    trackers = open_trackers(names, run, run_name="tiny", config=CONFIG, resume_step=2, enabled=True)
    for row in ROWS[2:]:
        trackers.log(row)
    trackers.close()
    assert json.loads((run / "trackers.json").read_text()) == state  # the same tracker runs
    losses = [(r["step"], pytest.approx(r["loss"])) for r in ROWS]

    # TensorBoard, read by TensorBoard's own reader: one value a step, the stray step-3 value purged
    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("loss")] == losses
    assert [(e.step, e.value) for e in acc.Scalars("rollout/reward")] == [
        (r["step"], pytest.approx(r["rollout"]["reward"])) for r in ROWS
    ]
    assert "recipe/text_summary" in acc.Tags()["tensors"]

    # wandb offline: both run files carry the saved run id; history 1-2 then 3-4; config = the recipe
    files = sorted((run / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 2
    runs = [read_run(f) for f in files]
    assert {r["run_id"] for r in runs} == {state["wandb"]["run_id"]}
    history = [h for r in runs for h in r["history"]]
    assert [(h["_step"], h["loss"]) for h in history] == losses
    assert [h["rollout/reward"] for h in history] == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert runs[0]["config"]["train"] == {"total_steps": 4, "lr": 0.001}

    # MLflow file store, read back with MlflowClient: one run, continued, every step, the recipe as params
    client = MlflowClient(offline)
    run_id = state["mlflow"]["run_id"]
    assert [r.info.run_id for r in client.search_runs([state["mlflow"]["experiment_id"]])] == [run_id]
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "loss")] == losses
    assert client.get_run(run_id).data.params == {
        "name": "tiny",
        "train.total_steps": "4",
        "train.lr": "0.001",
        "divergence.name": "fkl",
    }


def test_no_trackers_off_rank_0(tmp_path):
    from minillm_distill.train.trackers import open_trackers

    trackers = open_trackers(["tensorboard"], tmp_path, run_name="x", config={}, resume_step=None, enabled=False)
    trackers.log(ROWS[0])
    trackers.close()
    assert list(tmp_path.iterdir()) == []


def test_a_tracker_that_cannot_start_is_a_clear_error(tmp_path, monkeypatch):
    from minillm_distill.errors import ResourceError
    from minillm_distill.train.trackers import open_trackers

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "nosuchscheme://host/x")
    with pytest.raises(ResourceError, match="cannot start the mlflow tracker") as info:
        open_trackers(["tensorboard", "mlflow"], tmp_path, run_name="x", config={}, resume_step=None, enabled=True)
    assert "nosuchscheme" in info.value.why and "MLFLOW_TRACKING_URI" in info.value.hint
