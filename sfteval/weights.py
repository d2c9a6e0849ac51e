"""Load a causal LM the one safe way: safetensors only, no code from the model's repository, one-line refusals.

Shared by the hf engine and the trainer. transformers falls back to `pytorch_model.bin` (a pickle) when a directory
has no safetensors, and runs a repository's own modelling code when its config names it in `auto_map` and the
caller trusts it; sfteval does neither. A damaged file (a truncated `model.safetensors` whose header is intact) is
the user's error too, named in one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sfteval.core.errors import UserError
from sfteval.discovery import read_json_object, weights_kind


def load_causal_lm(path: Path, *, trust_remote_code: bool = False, **options: Any) -> Any:
    """`AutoModelForCausalLM.from_pretrained(path, **options)` from safetensors; failures are UserErrors naming path."""
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM

    weights_kind(Path(path))  # only pickle weights: refused before transformers looks at them
    if not trust_remote_code:
        refuse_remote_code(Path(path))
    try:
        return AutoModelForCausalLM.from_pretrained(
            path, use_safetensors=True, trust_remote_code=trust_remote_code, **options
        )
    except SafetensorError as error:
        raise UserError(
            f"{path}: damaged safetensors weights ({error})", hint="re-save or copy the checkpoint again"
        ) from None
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: cannot load the model ({error})") from None


def refuse_remote_code(path: Path) -> None:
    """A config whose `auto_map` names classes transformers does not have would need the repo's code: refuse."""
    from transformers import CONFIG_MAPPING

    config_path = path / "config.json"
    if not config_path.is_file():
        return
    config = read_json_object(config_path)
    auto_map = config.get("auto_map")
    if auto_map and config.get("model_type") not in CONFIG_MAPPING:
        names = ", ".join(map(str, auto_map.values())) if isinstance(auto_map, dict) else str(auto_map)
        raise UserError(
            f"{config_path}: auto_map asks to run the model repository's own code ({names}); "
            "sfteval never runs it (trust_remote_code is off)"
        )
