"""Timing: per-operation samples with ``perf_counter_ns``, peers interleaved in alternating order.

A *block* runs ``k`` operations of one peer and returns each one's duration in
milliseconds; `interleave` warms every peer up, then runs their blocks in rounds
whose order alternates (A B, B A, A B, ...), so that drift of a shared machine
falls on every peer alike.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

Block = Callable[[int], Awaitable[list[float]]]
"""Runs ``k`` timed operations and returns their durations in milliseconds."""


@dataclass(frozen=True, slots=True)
class Summary:
    """The median, 95th percentile (nearest rank) and count of some samples."""

    median: float
    p95: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        """Summarize ``values`` (at least one)."""
        if not values:
            raise ValueError("no samples")
        ordered = sorted(values)
        rank = max(1, math.ceil(0.95 * len(ordered)))
        return cls(median=statistics.median(ordered), p95=ordered[rank - 1], n=len(ordered))


def timed(operation: Callable[[], Awaitable[object]]) -> Block:
    """A block that times ``operation`` once per repetition."""

    async def block(k: int) -> list[float]:
        durations: list[float] = []
        for _ in range(k):
            start = time.perf_counter_ns()
            await operation()
            durations.append((time.perf_counter_ns() - start) / 1e6)
        return durations

    return block


async def interleave(
    blocks: Mapping[str, Block],
    *,
    n: int | Mapping[str, int],
    rounds: int = 10,
    warmup: int | Mapping[str, int] = 20,
) -> dict[str, list[float]]:
    """``n`` samples of every peer (or ``n[peer]``), in ``rounds`` interleaved blocks after a warm-up."""
    names = list(blocks)
    counts = {name: n if isinstance(n, int) else n[name] for name in names}
    warmups = {name: warmup if isinstance(warmup, int) else warmup.get(name, 0) for name in names}
    for name in names:
        if warmups[name]:
            await blocks[name](warmups[name])
    samples: dict[str, list[float]] = {name: [] for name in names}
    rounds = max(1, min(rounds, *counts.values()))
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            k = counts[name] // rounds + (1 if r < counts[name] % rounds else 0)
            samples[name] += await blocks[name](k)
    return samples


def per_round(values: Sequence[float], rounds: int) -> list[list[float]]:
    """``values`` from `interleave` cut back into its rounds (as it splits them, in order)."""
    rounds = max(1, min(rounds, len(values)))
    out: list[list[float]] = []
    start = 0
    for r in range(rounds):
        k = len(values) // rounds + (1 if r < len(values) % rounds else 0)
        out.append(list(values[start : start + k]))
        start += k
    return [chunk for chunk in out if chunk]


def round_ratios(numerator: Sequence[float], denominator: Sequence[float], rounds: int) -> list[float]:
    """The ratio of medians in each interleaved round (their spread is the spread of the ratio)."""
    pairs = zip(per_round(numerator, rounds), per_round(denominator, rounds), strict=False)
    return [statistics.median(a) / statistics.median(b) for a, b in pairs]
