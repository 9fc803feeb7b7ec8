"""libyaml and the pure-Python loader read every inventory alike.

The loader composes with libyaml where PyYAML has it and falls back to the pure-Python
loader for anything libyaml cannot read. Both paths must give the same values, lines, raw
scalars and problems (same refusals, same messages, same lines): for the whole bad-input
corpus, for every sample inventory, and for a few hundred mutations of the samples.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler import loader
from reconciler.errors import Problem
from tests.test_bad_input_corpus import CASES, Case, build

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted(
    [
        *ROOT.glob("keyspecs/**/*.yaml"),
        *ROOT.glob("examples/**/*.yaml"),
        *(ROOT / "reconciler" / "data" / "init").glob("**/*.yaml"),
    ]
)


def both(text: str) -> tuple[tuple[Any, ...], tuple[Any, ...], bool]:
    """What each path makes of ``text`` (values by repr: NaN is not equal to itself), and
    whether the libyaml path read it itself (False: it fell back to the pure loader)."""
    results = []
    for libyaml in (True, False):
        problems: list[Problem] = []
        data, lines, raw = loader.parse_yaml(text, "f.yaml", problems, libyaml=libyaml)
        results.append((repr(data), type(data), lines, raw, problems))
    itself = loader._parse_libyaml(text, "f.yaml", []) is not None
    return tuple(results[0]), tuple(results[1]), itself


def test_pyyaml_here_has_libyaml_and_the_loader_uses_it() -> None:
    # The wheels of PyYAML ship libyaml; without it the tests below would compare the
    # pure-Python loader with itself.
    assert yaml.__with_libyaml__ and loader.LIBYAML


def test_samples_are_read_by_libyaml_alike() -> None:
    assert len(SAMPLES) >= 8
    for path in SAMPLES:
        fast, pure, itself = both(path.read_text(encoding="utf-8"))
        assert fast == pure, path
        assert itself, f"{path}: libyaml fell back to the pure-Python loader"
        assert not pure[-1], path  # the samples are valid


def test_loading_a_sample_inventory_never_uses_the_pure_python_loader(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(text: str) -> None:
        raise AssertionError("the pure-Python loader was used")

    monkeypatch.setattr(loader, "_BoundedLoader", refuse)
    inventory = loader.load_inventory(ROOT / "keyspecs")
    assert inventory.keys


def _corpus_texts(case: Case) -> list[str]:
    texts = []
    for name, content in case.files.items():
        if not name.endswith((".yaml", ".yml")) or not isinstance(content, str | bytes):
            continue
        if isinstance(content, bytes):
            try:
                content = content.decode("utf-8")
            except UnicodeDecodeError:
                continue  # refused before any parser sees it
        texts.append(content)
    return texts


def _load(root: Path, libyaml: bool, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, ...]:
    monkeypatch.setattr(loader, "LIBYAML", libyaml)
    inventory, problems = loader.load_inventory_partial(root)
    if inventory is None:
        return (None, problems)
    return (
        inventory,
        inventory.settings_lines,
        [(k.spec, k.source, k.index, k.lines) for k in inventory.keys],
        problems,
    )


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_the_bad_input_corpus_loads_alike_through_both_paths(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build(tmp_path, case)
    monkeypatch.chdir(tmp_path)
    fast = _load(Path("keyspecs"), True, monkeypatch)
    pure = _load(Path("keyspecs"), False, monkeypatch)
    assert fast == pure
    for text in _corpus_texts(case):
        fast_text, pure_text, _ = both(text)
        assert fast_text == pure_text


def test_bounds_are_refused_by_libyaml_itself_with_the_pure_loaders_words() -> None:
    bombs = [c for c in CASES if c.kind == "yaml-bomb"]
    refused = 0
    for case in bombs:
        for text in _corpus_texts(case):
            fast, pure, itself = both(text)
            assert fast == pure, case.id
            if pure[-1] and itself:
                refused += 1
    # deep nesting, many values and alias bombs: no fallback needed to refuse them
    assert refused >= 10


# Characters that make YAML mean something else, or nothing.
_MUTANTS = [
    *"[]{}:,-#&*!|>'\"%@`?\t\n ",
    *["\n  ", ": ", "- ", "&a ", "*a", "!!str ", "\\", "\\t", "..."],
    *["\r\n", "\r", "\x85", "\u2028", "\ufeff", "é"],
]


def _mutations(text: str, count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        mutated = text
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(mutated) + 1)
            if rng.random() < 0.3 and at < len(mutated):
                mutated = mutated[:at] + mutated[at + 1 :]
            else:
                mutated = mutated[:at] + rng.choice(_MUTANTS) + mutated[at:]
        out.append(mutated)
    return out


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_mutated_samples_are_read_alike(sample: Path) -> None:
    seen = {"libyaml": 0, "fallback": 0}
    for text in _mutations(sample.read_text(encoding="utf-8"), 60, seed=len(sample.name)):
        fast, pure, itself = both(text)
        assert fast == pure, repr(text)
        seen["libyaml" if itself else "fallback"] += 1
    # both paths taken: valid mutants read by libyaml, broken ones by the pure loader
    assert seen["libyaml"] >= 10 and seen["fallback"] >= 5, seen
