"""How a record becomes the prompt text a model reads: ``data.prompt_format`` / ``--prompt-format``.

* ``family``: the model family's template (Alpaca style for the built-in families; the default);
* ``chat``: the tokenizer's chat template (``apply_chat_template(..., add_generation_prompt=True)``); the
  response then ends with the template's end-of-turn token;
* ``plain``: the instruction as it is (its input after a blank line);
* a format string with ``{instruction}`` (and optionally ``{input}``), e.g. ``"Q: {instruction}\\nA: "``.

A run writes its setting to ``final/prompt_format.json``; ``minillm eval`` and ``minillm generate`` use it
by default, so a model is evaluated the way it was trained.
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

from minillm_distill.data.chat import chat_template, end_of_turn_id, render_prompt
from minillm_distill.errors import MinillmError, RecipeError, ResourceError, UsageError

NAMED_FORMATS = ("family", "chat", "plain")
PLACEHOLDERS = ("instruction", "input")
PROMPT_FORMAT_FILE = "prompt_format.json"
DEFAULT = "family"


def check_prompt_format(value: str) -> str:
    """``value`` if it is a named format or a valid format string; ``ValueError`` saying what is wrong."""
    if value in NAMED_FORMATS:
        return value
    try:
        parts = list(string.Formatter().parse(value))
    except ValueError as exc:
        raise ValueError(
            f"{value!r} is not a valid format string ({exc}); write a literal brace as '{{{{' or '}}}}'"
        ) from exc
    names = [name for _, name, _, _ in parts if name is not None]
    if not names:
        raise ValueError(f"{value!r} is neither {', '.join(NAMED_FORMATS)} nor a format string with {{instruction}}")
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in PLACEHOLDERS:
            shown = "{}" if name == "" else "{" + name + "}"
            raise ValueError(f"unknown placeholder {shown} in {value!r}: use only {{instruction}} and {{input}}")
        if spec or conversion:
            raise ValueError(f"placeholder {{{name}}} in {value!r} takes no conversion or format spec")
    if "instruction" not in names:
        raise ValueError(f"the format string {value!r} has no {{instruction}} placeholder")
    return value


class PromptFormatter:
    """Formats prompts of one setting for one tokenizer and model family. ``format_prompt`` has the model
    family's signature, so a benchmark's ``format_prompt(example, family)`` can be given a formatter."""

    def __init__(
        self,
        setting: str,
        family: Any,
        tokenizer: Any,
        *,
        where: str = "data.prompt_format",
        error: type[MinillmError] = RecipeError,
    ) -> None:
        self.setting, self.family, self.tokenizer = setting, family, tokenizer
        if setting == "chat" and chat_template(tokenizer) is None:
            name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
            raise error(
                f"{where} is 'chat' but the tokenizer {name!r} has no chat template",
                why="a chat template (tokenizer_config.json `chat_template`) says how turns are written",
                hint="use a tokenizer with a chat template (an -Instruct model's), or another prompt format: "
                "family, plain, or a format string with {instruction}",
            )

    def format_prompt(self, instruction: str, input: str = "") -> str:
        if self.setting == "chat":
            text = f"{instruction}\n\n{input}" if input else instruction
            return render_prompt(self.tokenizer, [{"role": "user", "content": text}])
        if self.setting == "family":
            return self.family.format_prompt(instruction, input)
        if self.setting == "plain":
            return f"{instruction}\n\n{input}" if input else instruction
        return self.setting.format(instruction=instruction, input=input)

    def record_prompt(self, record: Any) -> str:
        """The prompt of a training record (:class:`minillm_distill.data.records.Record`)."""
        if self.setting == "chat":
            return render_prompt(self.tokenizer, record.chat_messages())
        if needs_chat_template(record):
            raise needs_chat_error(record, self.setting)
        return self.format_prompt(record.instruction, record.input)

    def response_end_id(self) -> int:
        """The token a response ends with: the chat template's end-of-turn token under ``chat`` (EOS when the
        template has none), EOS otherwise."""
        if self.setting == "chat":
            eot = end_of_turn_id(self.tokenizer)
            if eot is not None:
                return eot
        return int(self.tokenizer.eos_token_id)


def needs_chat_template(record: Any) -> bool:
    """A training record only the chat template can write: a conversation with a system turn or several turns."""
    return bool(record.messages) and [role for role, _ in record.messages] != ["user"]


def needs_chat_error(record: Any, setting: str) -> RecipeError:
    return RecipeError(
        f"{record.where}: a conversation with a system turn or several turns needs the chat template",
        why=f"data.prompt_format is {setting!r}, which formats one instruction",
        hint="set data.prompt_format: chat (with a tokenizer that has a chat template)",
    )


def check_same_chat_template(teacher: Any, student: Any, teacher_name: str, student_name: str) -> None:
    """Under ``chat`` the teacher reads the student's prompts: both tokenizers must write turns the same way."""
    if chat_template(teacher) != chat_template(student):
        raise RecipeError(
            f"data.prompt_format is 'chat' but the teacher {teacher_name!r} and the student {student_name!r} "
            "have different chat templates",
            why="both models score the same prompts, which are written with one template",
            hint="pick a teacher and a student of one family (same tokenizer), or use another prompt format",
        )


# -- the setting saved with a model ------------------------------------------------------------------------


def write_prompt_format(folder: Path, setting: str) -> None:
    (folder / PROMPT_FORMAT_FILE).write_text(json.dumps({"prompt_format": setting}) + "\n", encoding="utf-8")


def read_prompt_format(folder: str | Path) -> str | None:
    """The setting a model folder was trained with (``prompt_format.json``), ``None`` when it has none."""
    path = Path(folder) / PROMPT_FORMAT_FILE
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8")).get("prompt_format")
        return check_prompt_format(value)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError, TypeError, ValueError) as exc:
        raise ResourceError(
            f"{path} is not a valid prompt-format file",
            why=str(exc),
            hint='it holds {"prompt_format": "chat"} (or family, plain, a format string); fix or delete it, '
            "or give --prompt-format",
        ) from exc


def resolve_prompt_format(option: str | None, model: str) -> str:
    """``--prompt-format`` when given, else what the model folder was trained with, else ``family``."""
    if option is not None:
        try:
            return check_prompt_format(option)
        except ValueError as exc:
            raise UsageError(f"--prompt-format: {exc}", hint="family, chat, plain, or a format string") from exc
    return read_prompt_format(model) or DEFAULT


def cli_formatter(option: str | None, model: str, family: Any, tokenizer: Any) -> PromptFormatter:
    """The formatter ``eval``/``generate`` use for ``model`` (usage errors, exit 2)."""
    return PromptFormatter(
        resolve_prompt_format(option, model), family, tokenizer, where="the prompt format", error=UsageError
    )
