"""Sharding is pure: targets packed into at most N jobs, the --shard syntax, and how
--parallelism divides between targets. An organisation of 200 accounts x 4 Regions."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from reconciler.errors import InputError
from reconciler.shards import (
    ShardRef,
    Split,
    matrix_shards,
    pack,
    parse_shard,
    shard_of,
    split_parallelism,
)

REGIONS = ("us-east-1", "eu-west-1", "eu-central-1", "ap-southeast-2")


def organisation(seed: int = 12) -> list[tuple[str, int]]:
    """800 targets (200 accounts x 4 Regions), in inventory order, each with its weight:
    1 for the target plus its keys (0 to 40; a few accounts hold many more)."""
    rng = random.Random(seed)
    out = []
    for account in range(200):
        heavy = account % 37 == 0
        for region in REGIONS:
            keys = rng.randint(60, 120) if heavy else rng.randint(0, 40)
            out.append((f"acct-{account:03d}-{region}", 1 + keys))
    return out


@pytest.mark.parametrize("count", [1, 7, 256, 800, 1000], ids=lambda n: f"N={n}")
def test_every_target_lands_in_exactly_one_of_at_most_n_balanced_shards(count: int) -> None:
    targets = organisation()
    weight = dict(targets)
    shards = pack(targets, count)

    assert len(shards) == count
    placed = Counter(name for shard in shards for name in shard)
    assert set(placed) == set(weight) and set(placed.values()) == {1}
    # each shard lists its targets in inventory order
    order = {name: i for i, (name, _) in enumerate(targets)}
    assert all(list(s) == sorted(s, key=order.__getitem__) for s in shards)

    matrix = matrix_shards(targets, count)
    if len(targets) <= count:  # one job per target: no shards in the matrix
        assert matrix is None
        assert [s for s in shards if s] == [(name,) for name, _ in targets]
    else:
        assert matrix is not None and len(matrix) == count
        assert [str(ref) for ref, _ in matrix] == [f"{i}/{count}" for i in range(1, count + 1)]
        assert [names for _, names in matrix] == list(shards)
        assert all(names for _, names in matrix)  # no empty job
        # balanced by keys: heaviest and lightest shard differ by at most one target
        loads = [sum(weight[n] for n in s) for s in shards]
        assert max(loads) - min(loads) <= max(weight.values())
        assert max(loads) <= sum(loads) / count + max(weight.values())


@pytest.mark.parametrize("count", [1, 7, 256, 800, 1000], ids=lambda n: f"N={n}")
def test_the_same_inventory_gives_the_same_packing(count: int) -> None:
    first = pack(organisation(), count)
    assert pack(organisation(), count) == first
    assert [shard_of(organisation(), ShardRef(i, count)) for i in range(1, count + 1)] == list(
        first
    )
    if len(organisation()) > count:
        # membership does not depend on the order targets are listed in
        shuffled = organisation()
        random.Random(3).shuffle(shuffled)
        assert {frozenset(s) for s in pack(shuffled, count)} == {frozenset(s) for s in first}


def test_equal_targets_split_evenly_by_count() -> None:
    targets = [(f"t{i:03d}", 1) for i in range(800)]
    sizes = Counter(len(s) for s in pack(targets, 256))
    assert sizes == {3: 224, 4: 32}  # 800 = 224 * 3 + 32 * 4


def test_a_heavy_target_gets_a_shard_of_its_own() -> None:
    targets = [("big", 50), *((f"small-{i}", 5) for i in range(10))]
    shards = pack(targets, 3)
    assert ("big",) in shards
    assert sorted(len(s) for s in shards) == [1, 5, 5]


def test_cannot_pack_into_no_shard() -> None:
    with pytest.raises(ValueError):
        pack([("a", 1)], 0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1/1", ShardRef(1, 1)), ("3/256", ShardRef(3, 256)), (" 256 / 256 ", ShardRef(256, 256))],
    ids=["one-of-one", "three", "spaces-and-last"],
)
def test_shard_syntax(text: str, expected: ShardRef) -> None:
    assert parse_shard(text) == expected
    assert str(expected) == text.replace(" ", "")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is not I/N"),
        ("3", "is not I/N"),
        ("3/", "is not I/N"),
        ("a/b", "is not I/N"),
        ("-1/3", "is not I/N"),
        ("1.5/3", "is not I/N"),
        ("0/3", "from 1 to 3"),
        ("4/3", "from 1 to 3"),
        ("1/0", "from 1 to 0"),
    ],
    ids=["empty", "no-count", "no-total", "words", "negative", "fraction", "zero", "over", "none"],
)
def test_bad_shard_is_an_input_error(text: str, message: str) -> None:
    with pytest.raises(InputError) as info:
        parse_shard(text)
    (line,) = info.value.lines()
    assert line.startswith("--shard: ") and message in line


@pytest.mark.parametrize(
    ("parallelism", "targets", "expected"),
    [
        (None, 1, Split(1, None)),  # defaults: 16 reads, 8 keys per target
        (None, 4, Split(4, None)),
        (None, 30, Split(8, None)),
        (16, 1, Split(1, 16)),  # one target: all of it, as before sharding
        (16, 2, Split(2, 8)),
        (16, 4, Split(4, 4)),
        (16, 30, Split(4, 4)),
        (64, 4, Split(4, 16)),
        (3, 5, Split(1, 3)),
        (1, 5, Split(1, 1)),
        (256, 800, Split(64, 4)),
    ],
    ids=lambda v: str(v),
)
def test_parallelism_is_shared_between_targets(
    parallelism: int | None, targets: int, expected: Split
) -> None:
    split = split_parallelism(parallelism, targets)
    assert split == expected
    if parallelism is not None:  # never more calls in flight than asked for
        assert split.targets_at_once * (split.per_target or 0) <= parallelism
