"""Read an inventory directory into specs. Every problem carries its file and line.

All files are read and every problem is collected before anything is raised, so a user
sees every mistake at once.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from reconciler.errors import InputError, Problem
from reconciler.spec import KeyFile, KeySpec, Settings

SETTINGS_FILE = "inventory.yaml"
POLICIES_DIR = "policies"

YamlPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Source:
    """Where something is declared: a file (as shown to the user) and a 1-based line."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class LoadedKey:
    spec: KeySpec
    source: Source
    index: int
    lines: dict[YamlPath, int] = field(default_factory=dict, compare=False, repr=False)

    def line_of(self, *path: str | int) -> int:
        """The line of a field of this key (or of the closest parent that has one)."""
        full: YamlPath = ("keys", self.index, *path)
        while full:
            if full in self.lines:
                return self.lines[full]
            full = full[:-1]
        return self.source.line


@dataclass(frozen=True)
class Inventory:
    root: Path
    settings: Settings
    settings_source: Source
    keys: tuple[LoadedKey, ...]

    @property
    def policies_dir(self) -> Path:
        return self.root / POLICIES_DIR

    def display(self, path: Path) -> str:
        return display_path(path)


def display_path(path: Path) -> str:
    """A path as the user should read it: relative to the working directory when inside it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)
    return str(path) if rel.startswith("..") else rel


def load_inventory(root: str | Path) -> Inventory:
    """Load and validate `inventory.yaml` and every key file under `root`."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(Problem(f"inventory directory '{root}' does not exist"))
    problems: list[Problem] = []
    settings_path = root / SETTINGS_FILE
    settings: Settings | None = None
    settings_source = Source(display_path(settings_path), 1)
    if not settings_path.is_file():
        problems.append(Problem(f"no {SETTINGS_FILE} in '{display_path(root)}'"))
    else:
        data, lines = _read_yaml(settings_path, problems)
        if data is not None:
            settings = _validate(Settings, data, lines, settings_source.file, problems)

    keys: list[LoadedKey] = []
    for path in _key_files(root):
        shown = display_path(path)
        data, lines = _read_yaml(path, problems)
        if data is None:
            continue
        if not isinstance(data, dict) or "keys" not in data:
            problems.append(Problem("expected a top-level 'keys:' list", shown, 1))
            continue
        key_file = _validate(KeyFile, data, lines, shown, problems)
        if key_file is None:
            continue
        for index, spec in enumerate(key_file.keys):
            line = lines.get(("keys", index), 1)
            keys.append(LoadedKey(spec, Source(shown, line), index, lines))

    if settings is not None:
        problems.extend(_cross_file_problems(settings, keys))
    if problems:
        raise InputError(problems)
    assert settings is not None
    return Inventory(root, settings, settings_source, tuple(keys))


def _key_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or rel.parts[0] == POLICIES_DIR:
            continue
        if path.suffix in (".yaml", ".yml") and path.is_file() and rel.name != SETTINGS_FILE:
            yield path


def targets_of(key: LoadedKey, settings: Settings) -> list[str]:
    """The target names a key applies to: its own `targets:` or every target."""
    return list(key.spec.targets) if key.spec.targets else [t.name for t in settings.targets]


def _cross_file_problems(settings: Settings, keys: list[LoadedKey]) -> list[Problem]:
    """Rules that span keys: target names, unique names and aliases per target."""
    problems: list[Problem] = []
    known = {t.name for t in settings.targets}
    names: dict[tuple[str, str], LoadedKey] = {}
    aliases: dict[tuple[str, str], LoadedKey] = {}
    for key in keys:
        spec = key.spec
        for i, target in enumerate(spec.targets or []):
            if target not in known:
                problems.append(
                    Problem(
                        f"unknown target '{target}' (targets: {', '.join(sorted(known))})",
                        key.source.file,
                        key.line_of("targets", i),
                        f"keys[{key.index}].targets[{i}]",
                        spec.name,
                    )
                )
        for target in targets_of(key, settings):
            other = names.setdefault((target, spec.name), key)
            if other is not key:
                problems.append(
                    Problem(
                        f"the name '{spec.name}' is already used by {other.source} "
                        f"in target '{target}'",
                        key.source.file,
                        key.line_of("name"),
                        f"keys[{key.index}].name",
                        spec.name,
                    )
                )
            for i, alias in enumerate(spec.aliases):
                owner = aliases.setdefault((target, alias), key)
                if owner is not key:
                    problems.append(
                        Problem(
                            f"{alias} is already declared by key '{owner.spec.name}' "
                            f"({owner.source}) in target '{target}'",
                            key.source.file,
                            key.line_of("aliases", i),
                            f"keys[{key.index}].aliases[{i}]",
                            spec.name,
                        )
                    )
    return problems


# -- YAML with line numbers ---------------------------------------------------------------


def _read_yaml(path: Path, problems: list[Problem]) -> tuple[Any, dict[YamlPath, int]]:
    shown = display_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(f"cannot read: {exc}", shown))
        return None, {}
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            problems.append(Problem("the file is empty", shown, 1))
            return None, {}
        lines: dict[YamlPath, int] = {}
        _walk(node, (), lines, shown, problems)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problems.append(Problem(f"invalid YAML: {exc.problem or exc.context}", shown, line))
        return None, {}
    except yaml.YAMLError as exc:
        problems.append(Problem(f"invalid YAML: {exc}", shown))
        return None, {}
    finally:
        loader.dispose()
    return data, lines


def _walk(
    node: yaml.Node,
    path: YamlPath,
    lines: dict[YamlPath, int],
    file: str,
    problems: list[Problem],
) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                problems.append(
                    Problem(
                        f"'{key}' appears twice in the same mapping",
                        file,
                        key_node.start_mark.line + 1,
                        _dotted((*path, key)),
                    )
                )
            seen.add(key)
            child = (*path, key)
            _walk(value_node, child, lines, file, problems)
            lines[child] = key_node.start_mark.line + 1  # a field's line is its key's line
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, i), lines, file, problems)


def _dotted(path: YamlPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# -- pydantic errors -> problems ----------------------------------------------------------

_FIELD_PREFIX = re.compile(r"^([a-z_]+(?:\.[a-z_]+)*): (.*)$", re.DOTALL)


def _validate(
    model: type[Settings] | type[KeyFile],
    data: Any,
    lines: dict[YamlPath, int],
    file: str,
    problems: list[Problem],
) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            problems.append(_problem(error, data, lines, file))
        return None


def _problem(error: Any, data: Any, lines: dict[YamlPath, int], file: str) -> Problem:
    loc: YamlPath = tuple(error["loc"])
    # pydantic puts union / validator names into the location; keep only real data paths.
    loc = _data_path(loc, data)
    message = str(error["msg"]).removeprefix("Value error, ")
    match = _FIELD_PREFIX.match(message)
    if match:
        loc = (*loc, *match.group(1).split("."))
        message = match.group(2)
    kind = error["type"]
    if kind == "extra_forbidden":
        message = "unknown field"
    elif kind == "missing":
        message = "is required"
    line = None
    probe = loc
    while probe:
        if probe in lines:
            line = lines[probe]
            break
        probe = probe[:-1]
    key_name = None
    if len(loc) >= 2 and loc[0] == "keys" and isinstance(loc[1], int):
        try:
            name = data["keys"][loc[1]].get("name")
            key_name = name if isinstance(name, str) else None
        except (KeyError, IndexError, TypeError, AttributeError):
            key_name = None
    return Problem(message, file, line or 1, _dotted(loc) or None, key_name)


def _data_path(loc: YamlPath, data: Any) -> YamlPath:
    """The part of a pydantic location that names real data (drops validator names)."""
    out: list[str | int] = []
    node = data
    for part in loc:
        if _has(node, part):
            out.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and _is_field_name(part):
            out.append(part)  # a missing or unknown field: name it
            node = None
    return tuple(out)


def _has(node: Any, part: str | int) -> bool:
    if isinstance(node, dict):
        return part in node
    return isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)


def _is_field_name(part: str) -> bool:
    return re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", part) is not None and not part.startswith(
        ("function-", "is-instance")
    )
