"""The task's own word-level tokenizer: one token per task word, built offline (nothing is downloaded).

The vocabulary is ``<pad> <unk> <eos>``, the task's words (:meth:`World.words`) and the words of the
Alpaca prompt templates the model families wrap instructions in, so a formatted prompt has no unknown word.
Words are split on whitespace (newlines included) and decoded joined by single spaces. EOS doubles as BOS
(as in GPT-2); padding has its own token. The result depends only on the world, so teacher and student
built from the same seed share it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from minillm_demo.synthetic.task import EOS, PAD, SPECIAL_TOKENS, UNK, World


def template_words() -> tuple[str, ...]:
    """Words of the Alpaca prompt templates (with and without input), in order of first appearance."""
    try:
        from minillm_distill.api import ALPACA_PROMPT, ALPACA_PROMPT_WITH_INPUT
    except ImportError:  # pragma: no cover - the package is always installed with the CLI
        return ()
    text = (
        ALPACA_PROMPT.format(instruction="", input="") + " " + ALPACA_PROMPT_WITH_INPUT.format(instruction="", input="")
    )
    return tuple(dict.fromkeys(text.split()))


def vocabulary(world: World, extra_words: Sequence[str] = ()) -> dict[str, int]:
    """Word -> id: special tokens, the task's words, the templates' words, then ``extra_words`` (e.g. the
    choice prompts' words, :data:`minillm_demo.synthetic.choice.WORDS`), each word once."""
    words = [*SPECIAL_TOKENS, *world.words(), *template_words(), *extra_words]
    return {w: i for i, w in enumerate(dict.fromkeys(words))}


def build_tokenizer(world: World, extra_words: Sequence[str] = ()) -> Any:
    """A ``transformers.PreTrainedTokenizerFast`` over the world's words."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(vocab=vocabulary(world, extra_words), unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=EOS, eos_token=EOS, pad_token=PAD, unk_token=UNK, model_max_length=512
    )


def save_tokenizer(world: World, directory: str | Path, extra_words: Sequence[str] = ()) -> Path:
    """``save_pretrained`` the world's tokenizer (with ``extra_words``) into ``directory`` (loadable with
    ``AutoTokenizer``)."""
    directory = Path(directory)
    build_tokenizer(world, extra_words).save_pretrained(str(directory))
    return directory
