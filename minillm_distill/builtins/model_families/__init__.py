"""Built-in model families."""

from minillm_distill.api import hookimpl
from minillm_distill.builtins.model_families.generic import GenericFamily
from minillm_distill.builtins.model_families.gpt2 import GPT2Family
from minillm_distill.builtins.model_families.llama import LlamaFamily
from minillm_distill.builtins.model_families.mistral import MistralFamily
from minillm_distill.builtins.model_families.opt import OPTFamily
from minillm_distill.builtins.model_families.qwen2 import Qwen2Family

BUILTIN_FAMILIES = (GPT2Family, OPTFamily, LlamaFamily, Qwen2Family, MistralFamily, GenericFamily)


@hookimpl
def register_model_families(register) -> None:
    for cls in BUILTIN_FAMILIES:
        register(cls)
