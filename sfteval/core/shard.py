"""Shards: the i-th of n shares of a run's variants, so n processes (one per GPU) split one run.

`sfteval run --shard i/n` keeps every n-th variant; `sfteval report --merge` puts the shares back in discovery order.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sfteval.core.errors import UserError
from sfteval.core.variants import Variant


@dataclass(frozen=True)
class Shard:
    """The `index`-th (1-based) of `count` shares of a run's variants: variant k goes to share (k mod count) + 1."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str, where: str = "--shard") -> Shard:
        """'2/4' -> Shard(2, 4); anything else (0/2, 3/2, a/b, 1/0) is a UserError naming `where`."""
        match = re.fullmatch(r"([0-9]+)/([0-9]+)", text.strip())
        if match is None:
            raise UserError(f"{where}: {text!r} is not of the form i/n, e.g. 1/2")
        index, count = int(match[1]), int(match[2])
        if count < 1 or not 1 <= index <= count:
            raise UserError(f"{where}: {text!r} needs 1 <= i <= n and n >= 1")
        return cls(index, count)

    def select(self, variants: Sequence[Variant]) -> list[Variant]:
        """This share of `variants` (in their order); an empty share is a UserError."""
        kept = [
            variant for position, variant in enumerate(variants) if position % self.count == self.index - 1
        ]
        if not kept:
            raise UserError(
                f"--shard {self}: no variants for this shard ({len(variants)} variants in {self.count} shards)"
            )
        return kept

    def position(self, order: int) -> int:
        """Where the `order`-th (0-based) variant of this shard stands among all the run's variants."""
        return order * self.count + self.index - 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"
