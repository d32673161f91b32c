"""`minillm export`: checkpoints of any ZeRO stage -> a plain Hugging Face folder with the same logits.

Fast tests use hand-made stage-0 checkpoints (the module ``state_dict`` in ``engine/mp_rank_00_model_states.pt``,
as DeepSpeed writes it); the slow ones export real ``minillm distill`` runs (1-process ZeRO-2 bf16 and
2-process ZeRO-3) and compare with the run's own ``final/`` folder at the same step.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from helpers import run_minillm
from run_folders import make_run, scratch_student
from tiny_models import save_tiny_model

from minillm_distill import export as export_mod
from minillm_distill.errors import RuntimeFailure
from minillm_distill.models import load_model
from minillm_distill.recipe.schema import ModelSpec

IDS = torch.tensor(
    [[72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100], [256, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]]
)


def says(text: str, *pieces: str) -> bool:
    """Every piece is in the (Rich-panel) output, ignoring borders and line wrapping."""
    flat = re.sub(r"[\s│╭╮╰╯─•]+", "", text)
    return "Traceback" not in text and all(re.sub(r"\s+", "", p) in flat for p in pieces)


def logits(model_dir: Path, dtype: torch.dtype | None = None) -> torch.Tensor:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    if dtype is not None:
        model = model.to(dtype)
    with torch.no_grad():
        return model(IDS).logits


def model_logits(model: torch.nn.Module) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(IDS).logits


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_export_round_trip_from_a_stage0_checkpoint(cli, tmp_path, family):
    run, model = make_run(tmp_path, scratch_student(family))
    out = tmp_path / "hf"
    res = cli("export", run / "checkpoints" / "step-3", out)
    assert res.code == 0, res.output
    assert "exported step 3" in res.stdout
    names = {p.name for p in out.iterdir()}
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json", "README.md"} <= names
    assert torch.equal(logits(out), model_logits(model))

    from transformers import AutoTokenizer

    assert (
        AutoTokenizer.from_pretrained(out)("héllo")["input_ids"]
        == load_model(ModelSpec.model_validate(scratch_student(family))).tokenizer("héllo")["input_ids"]
    )
    card = (out / "README.md").read_text()
    for needle in ("fake-kd", "step 3", "`dataset` sampler x `fkl` divergence", f"`{family}` built from scratch"):
        assert needle in card
    assert "| loss | 0.333333 |" in card  # metrics of step 3
    assert "Teacher | `gpt2` built from scratch" in card
    assert (out / export_mod.RECIPE_COPY).read_text() == (run / "recipe.yaml").read_text()
    assert not list(tmp_path.glob(".hf.*"))


def test_run_directory_exports_its_latest_checkpoint(cli, tmp_path):
    run, _ = make_run(tmp_path, scratch_student("gpt2"), steps=(2, 4))
    res = cli("export", run, tmp_path / "hf")
    assert res.code == 0, res.output
    assert "exported step 4" in res.stdout
    assert "| loss | 0.25 |" in (tmp_path / "hf" / "README.md").read_text()
    for given, step in ((run / "checkpoints", 4), (run / "checkpoints" / "step-2" / "engine", 2)):
        res = cli("export", given, tmp_path / "hf", "--force")
        assert res.code == 0 and f"exported step {step}" in res.stdout, res.output


def test_path_student_is_rebuilt_from_its_folder(cli, tmp_path):
    base = save_tiny_model(tmp_path / "base", "llama", seed=2)
    run, model = make_run(tmp_path, {"path": str(base)})
    out = tmp_path / "hf"
    assert cli("export", run, out).code == 0
    assert torch.equal(logits(out), model_logits(model))
    assert not torch.equal(logits(out), logits(base))


def test_bf16_export(cli, tmp_path):
    from safetensors import safe_open

    run, model = make_run(tmp_path, scratch_student("llama"))
    out = tmp_path / "hf"
    res = cli("export", run, out, "--dtype", "bf16")
    assert res.code == 0, res.output
    reference = model.state_dict()
    with safe_open(str(out / "model.safetensors"), framework="pt") as f:
        for name in f.keys():  # noqa: SIM118 - safe_open is not a dict
            tensor = f.get_tensor(name)
            assert tensor.dtype == torch.bfloat16, name
            assert torch.equal(tensor, reference[name].to(torch.bfloat16)), name
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    exported = logits(out)
    assert exported.dtype == torch.bfloat16
    torch.testing.assert_close(exported.float(), model_logits(model), atol=0.05, rtol=0.05)
    assert "| Weights | bf16 |" in (out / "README.md").read_text()


def test_default_dtype_follows_the_run(cli, tmp_path):
    run, _ = make_run(tmp_path, scratch_student("gpt2"), dtype="fp16")
    assert cli("export", run, tmp_path / "hf").code == 0
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["dtype"] == "float16"


def test_refuses_a_non_empty_output_without_force(cli, tmp_path):
    run, model = make_run(tmp_path, scratch_student("gpt2"))
    out = tmp_path / "hf"
    out.mkdir()
    assert cli("export", run, out).code == 0  # an empty folder is fine
    (out / "keep.txt").write_text("mine")
    res = cli("export", run, out)
    assert res.code == 2 and says(res.stderr, "not empty", "--force")
    assert (out / "keep.txt").read_text() == "mine"
    res = cli("export", run, out, "--force")
    assert res.code == 0, res.output
    assert not (out / "keep.txt").exists()
    assert torch.equal(logits(out), model_logits(model))
    afile = tmp_path / "a-file"
    afile.write_text("x")
    assert cli("export", run, afile, "--force").code == 2


def test_failure_mid_write_leaves_no_output(cli, tmp_path, monkeypatch):
    from transformers import PreTrainedTokenizerFast

    run, _ = make_run(tmp_path, scratch_student("gpt2"))
    written: list[str] = []

    def boom(self, directory, *args, **kwargs):
        written.extend(p.name for p in Path(directory).iterdir())
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(PreTrainedTokenizerFast, "save_pretrained", boom)
    out = tmp_path / "out" / "hf"
    res = cli("export", run, out)
    assert res.code == 5 and says(res.stderr, "cannot write", "No space left on device"), res.output
    assert "model.safetensors" in written  # it failed half-way through
    assert not out.exists()
    assert list((tmp_path / "out").iterdir()) == []  # no temporary folder left behind either

    # over an existing export (--force): the old folder survives the failure untouched
    out.mkdir()
    (out / "old.txt").write_text("old")
    assert cli("export", run, out, "--force").code == 5
    assert [p.name for p in out.iterdir()] == ["old.txt"]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["hf"]


def test_interrupt_mid_write_leaves_no_output(tmp_path, monkeypatch):
    from transformers import PreTrainedTokenizerFast

    run, _ = make_run(tmp_path, scratch_student("gpt2"))

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(PreTrainedTokenizerFast, "save_pretrained", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export_mod.export_checkpoint(run, tmp_path / "out" / "hf")
    assert list((tmp_path / "out").iterdir()) == []


def test_checkpoint_errors(cli, tmp_path):
    run, _ = make_run(tmp_path, scratch_student("gpt2"))
    ck = run / "checkpoints" / "step-3"
    out = tmp_path / "hf"

    res = cli("export", tmp_path / "nowhere", out)
    assert res.code == 5 and says(res.stderr, "does not exist")
    res = cli("export", tmp_path, out)  # neither a checkpoint nor a run
    assert res.code == 5 and says(res.stderr, "neither a checkpoint")
    empty_run = tmp_path / "empty-run"
    (empty_run / "checkpoints").mkdir(parents=True)
    res = cli("export", empty_run, out)
    assert res.code == 5 and says(res.stderr, "no complete checkpoint")
    partial = run / "checkpoints" / ".tmp-step-9"
    (partial / "engine").mkdir(parents=True)
    res = cli("export", partial, out)
    assert res.code == 5 and says(res.stderr, "incomplete checkpoint")
    res = cli("export", ck, ck / "hf")
    assert res.code == 2 and says(res.stderr, "inside the checkpoint")

    recipe = (run / "recipe.yaml").read_text()
    (run / "recipe.yaml").unlink()
    res = cli("export", ck, out)
    assert res.code == 5 and says(res.stderr, "recipe.yaml", "--recipe")
    other = tmp_path / "other.yaml"
    other.write_text(recipe.replace("hidden: 16", "hidden: 32"))
    res = cli("export", ck, out, "--recipe", other)  # weights of another architecture
    assert res.code == 1 and says(res.stderr, "do not fit")
    other.write_text(recipe)
    assert cli("export", ck, out, "--recipe", other).code == 0
    assert not any("Traceback" in r for r in (res.output,))


def test_lora_weights_are_reported_not_silently_dropped(tmp_path):
    run, model = make_run(tmp_path, scratch_student("gpt2"))
    path = run / "checkpoints" / "step-3" / "engine" / "mp_rank_00_model_states.pt"
    module = dict(model.state_dict())
    module["transformer.h.0.attn.c_attn.lora_A.default.weight"] = torch.zeros(4, 16)
    torch.save({"module": module}, path)
    with pytest.raises(RuntimeFailure, match="LoRA"):
        export_mod.export_checkpoint(run, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


# -- real runs -------------------------------------------------------------------------------------------


def distill(out: Path, *args: str) -> Path:
    res = run_minillm(
        "distill",
        "recipes/tiny/kd.yaml",
        "--output-dir",
        out,
        "--set",
        "train.total_steps=2",
        "--set",
        "train.save_every=1",
        *args,
        env={"OMP_NUM_THREADS": "1"},
    )
    assert res.code == 0, res.output
    return out


@pytest.mark.slow
def test_zero2_bf16_run_exports_exactly_its_final_model(cli, tmp_path):
    run = distill(tmp_path / "run", "--set", "engine.zero_stage=2", "--set", "engine.dtype=bf16")
    out = tmp_path / "hf"
    res = cli("export", run, out)  # the run directory: its latest checkpoint, step 2 = total_steps
    assert res.code == 0, res.output
    assert "exported step 2" in res.stdout and "bf16" in res.stdout
    exported, final = logits(out), logits(run / "final")
    assert exported.dtype == final.dtype == torch.bfloat16
    assert torch.equal(exported, final)
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    card = (out / "README.md").read_text()
    assert f"| loss | {last['loss']:.6g} |" in card and "ZeRO stage 2, bf16" in card


@pytest.mark.slow
def test_two_process_zero3_run_exports_exactly_its_final_model(cli, tmp_path):
    run = distill(tmp_path / "run", "--nproc", "2", "--set", "engine.zero_stage=3")
    ck = run / "checkpoints" / "step-2"
    assert len(list((ck / "engine").glob("*_optim_states.pt"))) == 2  # really sharded over 2 ranks
    res = cli("export", ck, tmp_path / "hf")
    assert res.code == 0, res.output
    assert torch.equal(logits(tmp_path / "hf"), logits(run / "final"))
    # bf16 export: exactly the fp32 model cast to bf16
    res = cli("export", ck, tmp_path / "hf16", "--dtype", "bf16")
    assert res.code == 0, res.output
    assert torch.equal(logits(tmp_path / "hf16"), logits(run / "final", torch.bfloat16))


@pytest.mark.slow
def test_export_never_takes_trust_remote_code_from_the_run_folder(cli, tmp_path):
    """A run folder whose recipe.yaml points the student at a folder shipping Python code (config.json
    auto_map) and says trust_remote_code: true: export does not run that code (a marker file it would write
    stays absent) and says how to give the trust on the command line, exit 5."""
    import yaml

    run, _ = make_run(tmp_path, scratch_student("gpt2"))
    planted = run / "student_model"
    planted.mkdir()
    marker = tmp_path / "code-ran"
    (planted / "configuration_evil.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
        "from transformers import PretrainedConfig\n\n\nclass EvilConfig(PretrainedConfig):\n"
        "    model_type = 'evil'\n",
        encoding="utf-8",
    )
    config = {"model_type": "evil", "auto_map": {"AutoConfig": "configuration_evil.EvilConfig"}}
    (planted / "config.json").write_text(json.dumps(config), encoding="utf-8")
    recipe = yaml.safe_load((run / "recipe.yaml").read_text(encoding="utf-8"))
    recipe["student"] = {"path": str(planted), "trust_remote_code": True}
    (run / "recipe.yaml").write_text(yaml.safe_dump(recipe), encoding="utf-8")
    res = cli("export", run / "checkpoints" / "step-3", tmp_path / "hf")
    assert res.code == 5, res.output
    assert not marker.exists(), "export ran code from the run folder"
    assert "Traceback" not in res.output and "--trust-remote-code" in res.output.replace("\n", " ")
    assert not (tmp_path / "hf").exists()


def test_read_run_takes_trust_from_the_caller_only(tmp_path):
    from minillm_distill.export.run import read_run

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "name: r\nstudent: {path: ./s, trust_remote_code: true}\nteacher: {path: ./t, trust_remote_code: true}\n",
        encoding="utf-8",
    )
    run = read_run(recipe)
    assert (run.student.trust_remote_code, run.teacher.trust_remote_code, run.trust_asked) == (False, False, True)
    run = read_run(recipe, trust_remote_code=True)
    assert (run.student.trust_remote_code, run.teacher.trust_remote_code, run.trust_asked) == (True, True, False)
    recipe.write_text("name: r\nstudent: {path: ./s}\n", encoding="utf-8")
    assert read_run(recipe).trust_asked is False


@pytest.mark.slow
def test_the_kits_run_folder_fixture_gives_a_run_export_reads(tiny_run_folder, cli, tmp_path):
    """The test kit's ``tiny_run_folder``: a finished run with every checkpoint, as a plugin's tests would use it."""
    run = tiny_run_folder("tiny/kd", steps=2, save_every=1, sets=["train.micro_batch_size=2"])
    assert [p.name for p in sorted((run / "checkpoints").glob("step-*"))] == ["step-1", "step-2"]
    assert (run / "final" / "model.safetensors").exists() and len((run / "metrics.jsonl").read_text().splitlines()) == 2
    res = cli("export", run / "checkpoints" / "step-1", tmp_path / "out")
    assert res.code == 0, res.output
    assert "step 1" in (tmp_path / "out" / "README.md").read_text()
