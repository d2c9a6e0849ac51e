"""YAML read with its line numbers: suites and gate policies report every error as FILE:LINE: location: message.

The node tree keeps source marks, so a pydantic error location (e.g. probes.forgetting.limit) is walked back to the
line it came from. Duplicate keys are refused (YAML silently keeps the last of two, which hides a mistake).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from sfteval.core.errors import UserError


def read_text(path: Path, what: str) -> str:
    """A config file's text; an unreadable file (missing, a directory, not UTF-8) is a UserError naming it."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: cannot read {what} ({error})") from None


def compose_yaml(text: str, path: Path, what: str) -> tuple[yaml.Node, Any]:
    """The YAML node tree (with line marks) and its data; syntax errors, control characters, an empty document
    and duplicate keys are UserErrors naming the file (and line) and `what` the file is."""
    try:
        loader = yaml.SafeLoader(text)  # inside the try: the reader rejects control characters as it is made
        try:
            root = loader.get_single_node()
            if root is None:
                raise UserError(f"{path}: the {what} is empty")
            reject_duplicate_keys(root, path)
            return root, loader.construct_document(root)
        finally:
            loader.dispose()
    except yaml.reader.ReaderError as error:
        number = text[: error.position].count("\n") + 1
        raise UserError(f"{path}:{number}: invalid YAML ({error.reason}: #x{error.character:04x})") from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise UserError(f"{path}{line}: invalid YAML ({error.problem or error.context})") from None
    except yaml.YAMLError as error:
        raise UserError(f"{path}: invalid YAML ({error})") from None


def reject_duplicate_keys(node: yaml.Node, path: Path) -> None:
    """Refuse a mapping that repeats a key, naming the line of the repeat."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    raise UserError(f"{path}:{node_line(key)}: duplicate key {key.value!r}")
                seen.add(key.value)
            reject_duplicate_keys(value, path)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            reject_duplicate_keys(item, path)


def located_error(error: ValidationError, root: yaml.Node, path: Path, prefix: tuple[Any, ...]) -> UserError:
    """Turn the first pydantic error into 'FILE:LINE: dotted.location: message (and N more)'."""
    errors = error.errors(include_url=False)
    first = errors[0]
    location = (*prefix, *first["loc"])
    node = node_at(root, location, key=first["type"] == "extra_forbidden")
    dotted = ".".join(str(part) for part in location) or "(top level)"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return UserError(f"{path}:{node_line(node)}: {dotted}: {first['msg']}{more}")


def node_at(root: yaml.Node, location: Sequence[Any], key: bool = False) -> yaml.Node:
    """The deepest YAML node along `location` (the key node itself when `key`); stops where the path ends."""
    node = root
    for position, part in enumerate(location):
        if isinstance(node, yaml.MappingNode):
            match = next((pair for pair in node.value if pair[0].value == str(part)), None)
            if match is None:
                return node
            node = match[0] if key and position == len(location) - 1 else match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
        else:
            return node
    return node


def node_line(node: yaml.Node) -> int:
    """The 1-based line a node starts on."""
    return node.start_mark.line + 1
