"""Sharding: an organisation's targets packed into at most N CI jobs, and a run's
``--parallelism`` split between targets and the reads within each.

A GitHub Actions matrix holds at most 256 jobs. ``targets --format github-matrix
--max-jobs N`` packs the targets into N shards with ``pack``, and ``plan``, ``apply`` and
``drift --shard I/N`` select shard I with the very same function over the same inventory,
so a job runs exactly the targets its matrix entry lists. Pure: no I/O, no AWS, no click.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Sequence
from dataclasses import dataclass

from reconciler.errors import InputError, Problem

# The jobs of one GitHub Actions matrix, at most.
GITHUB_MATRIX_MAX_JOBS = 256
# Without --parallelism: targets side by side in one run (each with its own reads).
DEFAULT_TARGETS_AT_ONCE = 8
# With --parallelism N and several targets: each target keeps at least this many reads in
# flight, so a target with many keys is not read one call at a time.
MIN_READS_PER_TARGET = 4

_SHARD = re.compile(r"^\s*(\d{1,6})\s*/\s*(\d{1,6})\s*$")


@dataclass(frozen=True)
class ShardRef:
    """Shard ``index`` of ``count`` (1-based), written ``I/N``."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> ShardRef:
    """``I/N`` with 1 <= I <= N, or an input error naming ``--shard``."""
    match = _SHARD.match(text)
    if match is None:
        raise InputError(
            Problem(f"'{text}' is not I/N (shard I of N, e.g. 3/256)", field="--shard")
        )
    index, count = int(match[1]), int(match[2])
    if count < 1 or not 1 <= index <= count:
        raise InputError(
            Problem(f"'{text}': the shard number must be from 1 to {count}", field="--shard")
        )
    return ShardRef(index, count)


def pack(weights: Sequence[tuple[str, int]], count: int) -> tuple[tuple[str, ...], ...]:
    """The targets ``(name, weight)`` in ``count`` shards, each shard's names in the order
    given. Deterministic: the same names and weights give the same shards.

    With no more targets than shards, shard i holds target i (the rest are empty). With
    more, the heaviest target goes first into the lightest shard (longest processing time
    first; ties by fewer targets, then lower shard number; equal weights in name order),
    so the heaviest and lightest shard differ by at most one target's weight."""
    if count < 1:
        raise ValueError(f"cannot pack into {count} shards")
    if len(weights) <= count:
        return tuple((name,) for name, _ in weights) + ((),) * (count - len(weights))
    order = {name: i for i, (name, _) in enumerate(weights)}
    # (load, targets, shard number): the lightest shard first
    heap = [(0, 0, shard) for shard in range(count)]
    members: list[list[str]] = [[] for _ in range(count)]
    for name, weight in sorted(weights, key=lambda nw: (-nw[1], nw[0])):
        load, size, shard = heapq.heappop(heap)
        members[shard].append(name)
        heapq.heappush(heap, (load + max(0, weight), size + 1, shard))
    return tuple(tuple(sorted(m, key=order.__getitem__)) for m in members)


def shard_of(weights: Sequence[tuple[str, int]], ref: ShardRef) -> tuple[str, ...]:
    """The target names of shard ``ref`` (``pack``'s, so the matrix and the job agree)."""
    return pack(weights, ref.count)[ref.index - 1]


def matrix_shards(
    weights: Sequence[tuple[str, int]], max_jobs: int
) -> list[tuple[ShardRef, tuple[str, ...]]] | None:
    """The shards of a matrix of at most ``max_jobs`` jobs, or None when every target can
    have its own job (the matrix is then one entry per target, as without sharding)."""
    if len(weights) <= max_jobs:
        return None
    return [(ShardRef(i, max_jobs), names) for i, names in enumerate(pack(weights, max_jobs), 1)]


@dataclass(frozen=True)
class Split:
    """How a run's KMS calls in flight divide: ``targets_at_once`` targets side by side,
    each with ``per_target`` reads in flight (and keys changed side by side while applying);
    ``per_target`` None keeps the per-target defaults."""

    targets_at_once: int
    per_target: int | None


def split_parallelism(parallelism: int | None, targets: int) -> Split:
    """``--parallelism N`` bounds the run's KMS calls in flight: one target gets all N;
    several run side by side, up to N / MIN_READS_PER_TARGET at once, sharing N equally.
    Without it, each target keeps its defaults and up to DEFAULT_TARGETS_AT_ONCE run at once
    (every call is paced to its target's quota either way)."""
    targets = max(1, targets)
    if parallelism is None:
        return Split(min(DEFAULT_TARGETS_AT_ONCE, targets), None)
    at_once = max(1, min(targets, parallelism // MIN_READS_PER_TARGET))
    return Split(at_once, max(1, parallelism // at_once))
