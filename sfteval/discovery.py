"""Find the models to probe in an SFT output dir: base, each epoch checkpoint, the final model.

Reads only JSON (trainer_state.json, adapter_config.json, config.json, sfteval_manifest.json): never
`training_args.bin` or any other pickle.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from sfteval.core.errors import UserError
from sfteval.core.variants import Variant, VariantKind

MANIFEST_NAME = "sfteval_manifest.json"
_FULL_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
_ADAPTER_WEIGHTS = ("adapter_model.safetensors",)
_PICKLE_WEIGHTS = ("pytorch_model.bin", "adapter_model.bin", "model.pt")
_HF_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
_TORCHTUNE_EPOCH = re.compile(r"^epoch_(\d+)$")


def read_json(path: Path) -> Any:
    """Load a JSON file, turning any failure into a one-line UserError naming the file and line."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except json.JSONDecodeError as error:
        raise UserError(f"{path}:{error.lineno}: invalid JSON ({error.msg})") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: cannot read ({error})") from None


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON file that must hold an object (configs, trainer state, manifests); anything else is a UserError."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object, found {type(data).__name__} {str(data)[:40]!r}")
    return data


def _epoch_of(state_path: Path) -> float | None:
    """The `epoch` a trainer_state.json records (None when it records none); a non-number names the file."""
    epoch = read_json_object(state_path).get("epoch")
    if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, int | float)):
        raise UserError(f"{state_path}: epoch: expected a number, found {epoch!r}")
    return None if epoch is None else float(epoch)


def _directory_named(path: Path, key: str) -> Path | None:
    """The existing directory that the JSON object at `path` names under `key`, if any."""
    candidate = read_json_object(path).get(key)
    return Path(candidate) if isinstance(candidate, str) and candidate and Path(candidate).is_dir() else None


def weights_kind(path: Path) -> VariantKind | None:
    """'adapter' or 'full' when `path` holds safetensors weights; None when it holds none."""
    if (path / "adapter_config.json").exists() and any((path / name).exists() for name in _ADAPTER_WEIGHTS):
        return "adapter"
    if any((path / name).exists() for name in _FULL_WEIGHTS) or any(path.glob("model-*.safetensors")):
        return "full"
    if any((path / name).exists() for name in _PICKLE_WEIGHTS):
        raise UserError(
            f"{path}: only pickle weights (*.bin/*.pt) found; sfteval loads safetensors only",
            hint="re-save with save_pretrained(..., safe_serialization=True)",
        )
    return None


def discover(root: Path, base: Path | None = None) -> list[Variant]:
    """All variants under `root`, base first, then checkpoints in training order, then the final model."""
    root = Path(root)
    if not root.exists():
        raise UserError(f"{root}: directory not found")
    if not root.is_dir():
        raise UserError(f"{root}: not a directory")
    if base is not None and not Path(base).is_dir():
        raise UserError(f"--base {base}: directory not found")
    checkpoints = _checkpoints(root)
    final_kind = weights_kind(root)
    if not checkpoints and final_kind is None:
        if base is not None:
            # Nothing trained yet (a run probed before its first checkpoint, e.g. by the training callback).
            return [Variant(name="base", path=Path(base).resolve(), kind="full")]
        raise UserError(f"{root}: no model weights found (no checkpoint-N/, epoch_N/ or *.safetensors)")
    trained = [*checkpoints, *([("final", root, None, None)] if final_kind else [])]
    base_path = _resolve_base(root, base, [path for _, path, _, _ in trained])
    if base_path is not None:
        weights_kind(base_path)  # a base of pickle weights only is refused as a checkpoint is
    # transformers fails with a traceback on a config.json that is not an object: refuse it here, in one line.
    for path in [*([base_path] if base_path else []), *(path for _, path, _, _ in trained)]:
        if (path / "config.json").is_file():
            read_json_object(path / "config.json")
    variants = [Variant(name="base", path=base_path, kind="full")] if base_path else []
    for name, path, epoch, step in trained:
        kind = weights_kind(path) or "full"
        if kind == "adapter" and base_path is None:
            tried = _adapter_base_hint(path)
            raise UserError(
                f"{path}: adapter's base model not found{tried}",
                hint="pass the base model dir with --base PATH",
            )
        variants.append(
            Variant(
                name=name,
                path=path,
                kind=kind,
                base_path=base_path if kind == "adapter" else None,
                epoch=epoch,
                step=step,
            )
        )
    return variants


def _checkpoints(root: Path) -> list[tuple[str, Path, float | None, int | None]]:
    """HF Trainer checkpoint-N/ (epoch from trainer_state.json) and torchtune epoch_N/ dirs, named uniquely."""
    found: list[tuple[Path, float | None, int | None]] = []
    for child in sorted(root.iterdir()):
        if not child.is_dir() or weights_kind(child) is None:
            continue
        if match := _HF_CHECKPOINT.match(child.name):
            step = int(match.group(1))
            state_path = child / "trainer_state.json"
            found.append((child, _epoch_of(state_path) if state_path.exists() else None, step))
        elif match := _TORCHTUNE_EPOCH.match(child.name):
            # torchtune names the checkpoint written after the first epoch epoch_0.
            found.append((child, float(int(match.group(1)) + 1), None))
    found.sort(key=lambda item: (item[2] if item[2] is not None else -1, item[1] or 0.0))
    return _name_checkpoints(found)


def _name_checkpoints(found: list[tuple[Path, float | None, int | None]]):
    rounded = [
        round(epoch) if epoch is not None and abs(epoch - round(epoch)) < 0.01 else None
        for _, epoch, _ in found
    ]
    unique_epochs = None not in rounded and len(set(rounded)) == len(rounded)
    named = []
    for (path, epoch, step), whole in zip(found, rounded, strict=True):
        if unique_epochs:
            name = f"epoch-{whole}"
        else:
            name = f"step-{step}" if step is not None else path.name
        named.append((name, path, epoch, step))
    return named


def _resolve_base(root: Path, base: Path | None, trained: list[Path]) -> Path | None:
    """Base model dir from --base, the sfteval manifest, an adapter config, or config.json's _name_or_path."""
    if base is not None:
        return Path(base).resolve()
    manifest = root / MANIFEST_NAME
    if manifest.exists() and (candidate := _directory_named(manifest, "base_model")):
        return candidate.resolve()
    for path in trained:
        for name, key in (
            ("adapter_config.json", "base_model_name_or_path"),
            ("config.json", "_name_or_path"),
        ):
            if (path / name).exists():
                candidate = _directory_named(path / name, key)
                if candidate and candidate.resolve() != path.resolve():
                    return candidate.resolve()
    return None


def _adapter_base_hint(path: Path) -> str:
    candidate = read_json_object(path / "adapter_config.json").get("base_model_name_or_path")
    return f" (tried base_model_name_or_path={candidate!r})" if candidate else ""
