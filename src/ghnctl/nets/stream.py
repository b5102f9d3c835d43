"""A reproducible stream of random draws named by a text key. Torch-free, numpy-free.

Draw ``n`` of the stream named ``key`` is a fixed function of ``(key, n)``: BLAKE2b, keyed with a
digest of ``key``, of the block counter gives 64 bytes = eight 64-bit words. Nothing depends on
torch's, numpy's or Python's RNG implementations (Python only promises ``random.random()``
sequences across versions), on the platform, or on what else was drawn before in the process.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")

_WORDS = 8  # 64-bit words per BLAKE2b-512 block


class Stream:
    """Random integers, floats and choices from the stream named ``key``."""

    def __init__(self, key: str) -> None:
        self.key = key
        self._secret = hashlib.blake2b(key.encode("utf-8"), digest_size=32, person=b"ghnctl-stream").digest()
        self._block = 0
        self._words: list[int] = []

    def bits64(self) -> int:
        """The next 64-bit word."""
        if not self._words:
            digest = hashlib.blake2b(self._block.to_bytes(8, "little"), key=self._secret).digest()
            self._block += 1
            # reversed, so that pop() hands them out in order
            self._words = [int.from_bytes(digest[8 * i: 8 * i + 8], "little") for i in range(_WORDS - 1, -1, -1)]
        return self._words.pop()

    def below(self, n: int) -> int:
        """Uniform in ``0 .. n-1`` (rejection sampling, so exactly uniform)."""
        if n < 1:
            raise ValueError(f"below() needs n >= 1, got {n}")
        limit = (1 << 64) - (1 << 64) % n
        while True:
            x = self.bits64()
            if x < limit:
                return x % n

    def integer(self, low: int, high: int) -> int:
        """Uniform in ``low .. high`` inclusive."""
        return low + self.below(high - low + 1)

    def uniform(self) -> float:
        """Uniform in [0, 1) with 53 random bits."""
        return (self.bits64() >> 11) * (1.0 / (1 << 53))

    def bernoulli(self, p: float) -> bool:
        return self.uniform() < p

    def choice(self, items: Sequence[T]) -> T:
        return items[self.below(len(items))]

    def two_distinct(self, n: int) -> tuple[int, int]:
        """Two different values of ``0 .. n-1`` in random order (n >= 2)."""
        first = self.below(n)
        second = self.below(n - 1)
        return first, second + (second >= first)
