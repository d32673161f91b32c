"""Through the CLI: a chat run (conversational data, `prompt_format: chat`) trains, reports to TensorBoard,
writes its prompt format into final/, and `minillm eval` then formats prompts with the chat template by
default. A teacher whose chat template differs is a recipe error naming both."""

from __future__ import annotations

import json

import pytest
from chat_tokenizers import CHATML_TEMPLATE, save_chat_tokenizer
from helpers import BENCH_FIXTURES, run_minillm
from recipe_cases import assert_reported

pytestmark = pytest.mark.slow

RECIPE = """\
name: tiny-chat
seed: 1
teacher:
  family: qwen2
  scratch: {{layers: 1, hidden: 32, heads: 2, max_positions: 256}}
  tokenizer: {teacher_tok}
student:
  family: qwen2
  scratch: {{layers: 1, hidden: 16, heads: 2, max_positions: 256}}
  tokenizer: {student_tok}
data:
  train: {data}
  max_prompt_length: 150
  max_response_length: 40
  prompt_format: chat
sampler: {{name: dataset}}
divergence: {{name: fkl}}
train:
  total_steps: 2
  micro_batch_size: 2
  lr: 1e-3
  report_to: [{report_to}]
"""


def write_recipe(tmp_path, *, teacher_tok, student_tok, report_to=""):
    rows = [
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": f"Say {i}."},
                {"role": "assistant", "content": f"{i}"},
            ]
        }
        for i in range(4)
    ]
    data = tmp_path / "chat.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = tmp_path / "chat.yaml"
    path.write_text(RECIPE.format(teacher_tok=teacher_tok, student_tok=student_tok, data=data, report_to=report_to))
    return path


@pytest.mark.slow
def test_chat_run_trains_saves_its_format_and_eval_uses_it(tmp_path, cli):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tok = save_chat_tokenizer(tmp_path / "tok")
    recipe = write_recipe(tmp_path, teacher_tok=tok, student_tok=tok, report_to="tensorboard")
    run = tmp_path / "run"
    res = run_minillm("distill", str(recipe), "--output-dir", str(run), env={"OMP_NUM_THREADS": "1"})
    assert res.code == 0, res.output
    final = run / "final"
    assert json.loads((final / "prompt_format.json").read_text()) == {"prompt_format": "chat"}
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("loss")] == [(r["step"], pytest.approx(r["loss"])) for r in rows]

    out = tmp_path / "eval"
    dolly = BENCH_FIXTURES / "dolly.jsonl"
    common = ["eval", "--bench", "dolly", "--data", dolly, "-m", final, "--limit", "2", "--seeds", "1"]
    res = cli(*common, "--max-new-tokens", "2", "--device", "cpu", "-o", out, "--json")
    assert res.code == 0, res.output
    predictions = [json.loads(line) for line in (out / "dolly" / "predictions.jsonl").read_text().splitlines()]
    first = json.loads(dolly.read_text().splitlines()[1])
    assert predictions[1]["prompt"] == (
        f"<|im_start|>user\n{first['instruction']}\n\n{first['context']}<|im_end|>\n<|im_start|>assistant\n"
    )
    assert json.loads((out / "dolly" / "scores.json").read_text())["settings"]["prompt_format"] == "chat"
    # --prompt-format overrides what the model was trained with
    res = cli(*common, "--max-new-tokens", "1", "--device", "cpu", "-o", tmp_path / "e2", "--prompt-format", "plain")
    assert res.code == 0, res.output
    plain = json.loads((tmp_path / "e2" / "dolly" / "predictions.jsonl").read_text().splitlines()[1])
    assert plain["prompt"] == f"{first['instruction']}\n\n{first['context']}"


@pytest.mark.slow
def test_teacher_with_another_chat_template_is_a_recipe_error(tmp_path):
    student = save_chat_tokenizer(tmp_path / "student-tok")
    teacher = save_chat_tokenizer(tmp_path / "teacher-tok", template=CHATML_TEMPLATE.replace("\n", "\n\n"))
    recipe = write_recipe(tmp_path, teacher_tok=teacher, student_tok=student)
    res = run_minillm("distill", str(recipe), "--output-dir", str(tmp_path / "run"), env={"OMP_NUM_THREADS": "1"})
    assert res.code == 3, res.output
    assert_reported(res.output, "have different chat templates", "teacher", "student")
