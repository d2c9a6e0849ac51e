"""What an instruction checker is, how its kwargs are validated, and the registry that holds IFEval's 25 of them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sfteval.core.errors import UserError
from sfteval.core.registry import Registry

#: IFEval's two comparison relations: "less than" means count < N, "at least" means count >= N.
RELATIONS = ("less than", "at least")

#: ISO 639-1 codes IFEval draws `language:response_language` from, with the names its instructions use.
LANGUAGE_NAMES = {
    "en": "English", "es": "Spanish", "pt": "Portuguese", "ar": "Arabic", "hi": "Hindi", "fr": "French",
    "ru": "Russian", "de": "German", "ja": "Japanese", "it": "Italian", "bn": "Bengali", "uk": "Ukrainian",
    "th": "Thai", "ur": "Urdu", "ta": "Tamil", "te": "Telugu", "bg": "Bulgarian", "ko": "Korean", "pl": "Polish",
    "he": "Hebrew", "fa": "Persian", "vi": "Vietnamese", "ne": "Nepali", "sw": "Swahili", "kn": "Kannada",
    "mr": "Marathi", "gu": "Gujarati", "pa": "Punjabi", "ml": "Malayalam", "fi": "Finnish",
}  # fmt: skip


def compare(count: int, relation: str, threshold: int) -> bool:
    """Apply an IFEval relation to a measured count."""
    return count < threshold if relation == "less than" else count >= threshold


def as_count(value: object) -> int:
    """A positive integer (JSON exports sometimes write 3 as 3.0)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"expected a positive integer, got {value!r}")
    return value


def as_relation(value: object) -> str:
    if value not in RELATIONS:
        raise ValueError(f"expected one of {list(RELATIONS)}, got {value!r}")
    return str(value)


def as_text(value: object) -> str:
    """A non-blank string, surrounding whitespace removed (IFEval strips phrases and markers too)."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a non-empty string, got {value!r}")
    return value.strip()


def as_words(value: object) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(w, str) and w for w in value):
        raise ValueError(f"expected a non-empty list of non-empty strings, got {value!r}")
    return tuple(value)


def as_letter(value: object) -> str:
    if not isinstance(value, str) or len(value) != 1 or not ("a" <= value.lower() <= "z"):
        raise ValueError(f"expected one ASCII letter, got {value!r}")
    return value.lower()


def as_language(value: object) -> str:
    if value not in LANGUAGE_NAMES:
        raise ValueError(f"expected an ISO 639-1 code among {sorted(LANGUAGE_NAMES)}, got {value!r}")
    return str(value)


def show_words(words: tuple[str, ...]) -> str:
    return ", ".join(f'"{word}"' for word in words)


@dataclass(frozen=True)
class Parameter:
    """One kwarg of an instruction: its IFEval name, how it is validated, and how it reads in a prompt."""

    name: str
    convert: Callable[[object], object]
    show: Callable[..., str] = str


@dataclass(frozen=True)
class Checker:
    """A verifiable instruction: IFEval id, kwargs, the verification and the prompt wording."""

    instruction_id: str
    parameters: tuple[Parameter, ...]
    verify: Callable[..., bool]
    template: str
    #: Cross-kwarg rule (e.g. nth paragraph <= number of paragraphs); raises ValueError when broken.
    consistency: Callable[..., None] | None = field(default=None)

    @property
    def family(self) -> str:
        return self.instruction_id.split(":", 1)[0]

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(parameter.name for parameter in self.parameters)

    def normalize(self, kwargs: Mapping[str, object]) -> dict[str, object]:
        """Validated kwargs; None values are dropped first, as IFEval rows carry every key with None for unused ones."""
        given = {name: value for name, value in kwargs.items() if value is not None}
        expected = set(self.parameter_names)
        unknown, missing = sorted(set(given) - expected), sorted(expected - set(given))
        if unknown or missing:
            raise UserError(
                f"{self.instruction_id}: kwargs must be exactly {sorted(expected)}"
                + (f"; unexpected {unknown}" if unknown else "")
                + (f"; missing {missing}" if missing else "")
            )
        try:
            values = {p.name: p.convert(given[p.name]) for p in self.parameters}
            if self.consistency is not None:
                self.consistency(**values)
        except ValueError as error:
            raise UserError(f"{self.instruction_id}: {error}") from None
        return values

    def check(self, response: str, **kwargs: object) -> bool:
        """Whether `response` follows the instruction (IFEval's check_following)."""
        return bool(self.verify(response, **self.normalize(kwargs)))

    def describe(self, **kwargs: object) -> str:
        """The instruction sentence(s) to append to a prompt."""
        values = self.normalize(kwargs)
        return self.template.format(**{p.name: p.show(values[p.name]) for p in self.parameters})


CHECKERS: Registry[Checker] = Registry("instruction id")


def register(
    instruction_id: str,
    template: str,
    *parameters: Parameter,
    consistency: Callable[..., None] | None = None,
) -> Callable[[Callable[..., bool]], Callable[..., bool]]:
    """Register the decorated verification function under an IFEval instruction id."""

    def decorator(verify: Callable[..., bool]) -> Callable[..., bool]:
        CHECKERS.add(instruction_id, Checker(instruction_id, parameters, verify, template, consistency))
        return verify

    return decorator
