"""Read an inventory directory into specs. Every problem carries its file and line.

All files are read and every problem is collected before anything is raised, so a user
sees every mistake at once.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from reconciler.errors import InputError, Problem
from reconciler.spec import KeyFile, KeySpec, Settings

SETTINGS_FILE = "inventory.yaml"
POLICIES_DIR = "policies"

# Bounds on one YAML file, so that hostile input ends in one line within seconds: its size,
# the values the parser builds (PyYAML's pure-Python composer takes ~25 us per value), the
# values it stands for once aliases are expanded (a "billion laughs" file is a few lines),
# and how deeply they nest (the composer recurses per level).
MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_NODES = 50_000
MAX_EXPANDED_NODES = 200_000
MAX_DEPTH = 100

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
    settings_lines: dict[YamlPath, int] = field(default_factory=dict, compare=False, repr=False)

    def settings_line(self, *path: str | int) -> int:
        """The line of a field of `inventory.yaml` (or of the closest parent that has one)."""
        full: YamlPath = path
        while full:
            if full in self.settings_lines:
                return self.settings_lines[full]
            full = full[:-1]
        return self.settings_source.line

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
    inventory, problems = load_inventory_partial(root)
    if problems:
        raise InputError(problems)
    assert inventory is not None
    return inventory


def load_inventory_partial(root: str | Path) -> tuple[Inventory | None, list[Problem]]:
    """Everything that loads, and every problem found.

    The inventory holds the keys that are valid on their own (a key with a mistake is
    left out, its neighbours are not), so later checks (templates, policies) can run on
    them too and a user sees every mistake at once. None when the settings are unusable.
    """
    root = Path(root)
    if not root.is_dir():
        what = "is not a directory" if root.exists() else "does not exist"
        return None, [Problem(f"inventory directory '{root}' {what}")]
    problems: list[Problem] = []
    settings_path = root / SETTINGS_FILE
    settings: Settings | None = None
    settings_source = Source(display_path(settings_path), 1)
    settings_lines: dict[YamlPath, int] = {}
    if not settings_path.is_file():
        problems.append(Problem(f"no {SETTINGS_FILE} in '{display_path(root)}'"))
    elif _outside(settings_path, root, problems):
        pass
    else:
        data, settings_lines, raw = _read_yaml(settings_path, problems)
        if data is not None:
            settings = _validate(
                Settings, data, settings_lines, raw, settings_source.file, problems
            )

    keys: list[LoadedKey] = []
    for path in _key_files(root):
        shown = display_path(path)
        if _outside(path, root, problems):
            continue
        data, lines, raw = _read_yaml(path, problems)
        if data is None:
            continue
        if not isinstance(data, dict) or "keys" not in data:
            problems.append(Problem("expected a top-level 'keys:' list", shown, 1))
            continue
        items = data["keys"]
        # The file's shape first (top-level fields, a list), then each key on its own.
        if _validate(KeyFile, {**data, "keys": []}, lines, raw, shown, problems) is None:
            continue
        if not isinstance(items, list):
            _validate(KeyFile, data, lines, raw, shown, problems)
            continue
        found: list[Problem] = []
        for index, item in enumerate(items):
            spec = _validate(
                KeySpec, item, lines, raw, shown, found, prefix=("keys", index), whole=data
            )
            if spec is not None:
                line = lines.get(("keys", index), 1)
                keys.append(LoadedKey(spec, Source(shown, line), index, lines))
        problems.extend(sorted(found, key=lambda p: p.line or 0))

    if settings is not None:
        problems.extend(_cross_file_problems(settings, keys))
        return Inventory(root, settings, settings_source, tuple(keys), settings_lines), problems
    return None, problems


def _key_files(root: Path) -> Iterator[Path]:
    """Every key file; a symbolic link among them too, even a broken one (the loader says
    so: silently skipping a key file would read as every key in it being removed)."""
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or rel.parts[0] == POLICIES_DIR:
            continue
        if path.suffix not in (".yaml", ".yml") or rel.name == SETTINGS_FILE:
            continue
        if path.is_file() or (path.is_symlink() and not path.is_dir()):
            yield path


def _outside(path: Path, root: Path, problems: list[Problem]) -> bool:
    """True (with a problem) when ``path``, after following symlinks, is not inside ``root``:
    a key file may be a link within the inventory, never to a file elsewhere."""
    try:
        inside = path.resolve(strict=True).is_relative_to(root.resolve())
    except (OSError, RuntimeError):  # a dangling link, a link loop
        problems.append(
            Problem("cannot be read (a broken or looping symbolic link?)", display_path(path))
        )
        return True
    if not inside:
        problems.append(
            Problem(
                f"is a symbolic link that leads outside {display_path(root)}/; refused",
                display_path(path),
            )
        )
    return not inside


def targets_of(key: LoadedKey, settings: Settings) -> list[str]:
    """The target names a key applies to: its own `targets:` or every target."""
    return list(key.spec.targets) if key.spec.targets else [t.name for t in settings.targets]


def _cross_file_problems(settings: Settings, keys: list[LoadedKey]) -> list[Problem]:
    """Rules that span keys: target names, unique names and aliases per target."""
    problems: list[Problem] = []
    known = {t.name for t in settings.targets}
    names: dict[tuple[str, str], LoadedKey] = {}
    aliases: dict[tuple[str, str], LoadedKey] = {}
    replica_aliases: dict[tuple[str, str, str], LoadedKey] = {}
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
        # One problem per clash, naming every target it happens in.
        name_clashes: dict[int, tuple[LoadedKey, list[str]]] = {}
        alias_clashes: dict[tuple[int, int], tuple[LoadedKey, list[str]]] = {}
        for target in targets_of(key, settings):
            if target not in known:
                continue
            other = names.setdefault((target, spec.name), key)
            if other is not key:
                name_clashes.setdefault(id(other), (other, []))[1].append(target)
            for i, alias in enumerate(spec.aliases):
                owner = aliases.setdefault((target, alias), key)
                if owner is not key:
                    alias_clashes.setdefault((i, id(owner)), (owner, []))[1].append(target)
            problems += _replica_alias_problems(key, target, replica_aliases)
        for other, in_targets in name_clashes.values():
            problems.append(
                Problem(
                    f"the name '{spec.name}' is already used by {other.source} "
                    f"in {_targets_text(in_targets)}",
                    key.source.file,
                    key.line_of("name"),
                    f"keys[{key.index}].name",
                    spec.name,
                )
            )
        for (i, _), (owner, in_targets) in alias_clashes.items():
            problems.append(
                Problem(
                    f"{spec.aliases[i]} is already declared by key '{owner.spec.name}' "
                    f"({owner.source}) in {_targets_text(in_targets)}",
                    key.source.file,
                    key.line_of("aliases", i),
                    f"keys[{key.index}].aliases[{i}]",
                    spec.name,
                )
            )
    return problems


def _replica_alias_problems(
    key: LoadedKey, target: str, seen: dict[tuple[str, str, str], LoadedKey]
) -> list[Problem]:
    """An alias names one key per Region: a replica's aliases (its own, or the key's) must
    not be another replica's in the same Region of the same target."""
    problems = []
    for j, replica in enumerate(key.spec.replicas):
        own = replica.aliases is not None
        for i, alias in enumerate(
            replica.aliases if replica.aliases is not None else key.spec.aliases
        ):
            owner = seen.setdefault((target, replica.region, alias), key)
            if owner is key:
                continue
            path: tuple[str | int, ...] = ("replicas", j, "aliases", i) if own else ("aliases", i)
            problems.append(
                Problem(
                    f"{alias} in {replica.region} is already declared by key "
                    f"'{owner.spec.name}' ({owner.source}) in target '{target}'",
                    key.source.file,
                    key.line_of(*path),
                    dotted(("keys", key.index, *path)),
                    key.spec.name,
                )
            )
    return problems


def _targets_text(names: list[str]) -> str:
    quoted = ", ".join(f"'{n}'" for n in names)
    return f"target {quoted}" if len(names) == 1 else f"targets {quoted}"


# -- YAML with line numbers ---------------------------------------------------------------


def _read_yaml(
    path: Path, problems: list[Problem]
) -> tuple[Any, dict[YamlPath, int], dict[YamlPath, str]]:
    """The data, the line of every path, and the text of every unquoted scalar."""
    shown = display_path(path)
    text = _read_text(path, shown, problems)
    if text is None:
        return None, {}, {}
    return parse_yaml(text, shown, problems)


LIBYAML = bool(getattr(yaml, "__with_libyaml__", False))


def parse_yaml(
    text: str, shown: str, problems: list[Problem], *, libyaml: bool | None = None
) -> tuple[Any, dict[YamlPath, int], dict[YamlPath, str]]:
    """One YAML document: its data, the line of every path, the text of every unquoted scalar.

    With libyaml (``libyaml``; by default LIBYAML, whether PyYAML was built with it) the
    document is composed in C, several times faster, with exactly the results of the
    pure-Python loader: the same bounds counted in the same order, the same values, lines
    and refusals.
    Anything libyaml cannot read (a syntax error, a character YAML does not allow, a value
    that cannot be constructed) is read again by the pure-Python loader, whose message is
    the one shown, so an error reads the same with or without libyaml.
    """
    if LIBYAML if libyaml is None else libyaml:
        found: list[Problem] = []
        parsed = _parse_libyaml(text, shown, found)
        if parsed is not None:
            problems.extend(found)
            return parsed
    return _parse(text, shown, problems, _BoundedLoader)


def _parse_libyaml(
    text: str, shown: str, problems: list[Problem]
) -> tuple[Any, dict[YamlPath, int], dict[YamlPath, str]] | None:
    """`_parse` with libyaml's parser and composer; None when the pure-Python loader must
    read the text instead (to say what is wrong with it in its own words)."""
    if _NON_PRINTABLE.search(text):  # the pure-Python reader refuses these at once
        return None
    if _READ_OTHERWISE.search(text):
        return None
    try:
        aliases = _check_bounds(text)
    except _Refused as exc:
        problems.append(Problem(exc.message, shown, exc.line))
        return None, {}, {}
    except (yaml.YAMLError, _Fallback):
        return None
    try:
        return _parse(text, shown, problems, yaml.CSafeLoader, aliases=aliases, fallible=True)
    except _Fallback:
        return None


class _Fallback(Exception):
    """libyaml could not read a document: the pure-Python loader reads it again."""


def _parse(
    text: str,
    shown: str,
    problems: list[Problem],
    make_loader: Callable[[str], yaml.SafeLoader | yaml.CSafeLoader],
    *,
    aliases: bool | None = None,
    fallible: bool = False,
) -> tuple[Any, dict[YamlPath, int], dict[YamlPath, str]]:
    """Compose, check and construct one document with a loader made for it.

    ``aliases``: whether the document has an alias (None: the _BoundedLoader saw as it
    composed). ``fallible``: a YAML or value error raises _Fallback instead of becoming a
    problem."""
    loader = None
    try:
        loader = make_loader(text)
        node = loader.get_single_node()
        if node is None:
            problems.append(Problem("the file is empty", shown, 1))
            return None, {}, {}
        if aliases is None:
            aliases = not isinstance(loader, _BoundedLoader) or loader.aliases
        if aliases:  # without one the bounds checked while composing are all there is
            _check_expansion(node)
        lines: dict[YamlPath, int] = {}
        raw: dict[YamlPath, str] = {}
        duplicates: list[Problem] = []
        _walk(node, (), lines, raw, shown, duplicates)
        data = loader.construct_document(node)
    except _Refused as exc:
        problems.append(Problem(exc.message, shown, exc.line))
        return None, {}, {}
    except (yaml.YAMLError, ValueError, OverflowError) as exc:
        if fallible:
            raise _Fallback from None
        problems.append(_error_problem(exc, text, shown))
        return None, {}, {}
    finally:
        if loader is not None:
            loader.dispose()
    for problem in duplicates:
        problems.append(replace(problem, key=_key_name(data, problem.field)))
    return data, lines, raw


def _error_problem(exc: Exception, text: str, shown: str) -> Problem:
    """What the pure-Python loader's exception says, in one line with the file and line."""
    if isinstance(exc, yaml.reader.ReaderError):
        return Problem(
            f"invalid YAML: the control character U+{exc.character:04X} is not allowed "
            "(write it as an escape inside double quotes)",
            shown,
            text.count("\n", 0, exc.position) + 1,
        )
    if isinstance(exc, yaml.MarkedYAMLError):
        return _yaml_problem(exc, shown)
    if isinstance(exc, yaml.YAMLError):
        return Problem(f"invalid YAML: {_one_line(exc)}", shown)
    # e.g. an integer of more than 4300 digits
    return Problem(f"invalid YAML value: {_one_line(exc)}", shown)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _read_text(path: Path, shown: str, problems: list[Problem]) -> str | None:
    """The file's UTF-8 text, or None after a problem (too large, unreadable, not UTF-8)."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        problems.append(Problem(f"cannot read: {exc.strerror or exc}", shown))
        return None
    if len(data) > MAX_FILE_BYTES:
        problems.append(Problem(f"the file is larger than {MAX_FILE_BYTES} bytes; split it", shown))
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        problems.append(
            Problem(
                f"the file is not UTF-8 text (byte 0x{data[exc.start]:02x}); save it as UTF-8",
                shown,
                line,
            )
        )
        return None


class _Refused(Exception):
    """A YAML document over one of the bounds, or with a construct the inventory refuses."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


_COLLECTION_START = (yaml.SequenceStartEvent, yaml.MappingStartEvent)
_COLLECTION_END = (yaml.SequenceEndEvent, yaml.MappingEndEvent)
_NODE_EVENTS = (yaml.ScalarEvent, yaml.AliasEvent, *_COLLECTION_START)


_NON_PRINTABLE = yaml.reader.Reader.NON_PRINTABLE
# Text that libyaml reads and PyYAML refuses or reads otherwise: a tab (`{a\tb: c}`), a byte
# order mark after the start (libyaml skips it), a comment right after a block scalar's
# header (`key: >#c`). Found by tests/test_loader_libyaml.py's mutations.
_READ_OTHERWISE = re.compile(r"\t|.\ufeff|[|>][-+0-9]*#", re.DOTALL)


def _check_bounds(text: str) -> bool:
    """The bounds of _BoundedLoader on libyaml's events, before libyaml composes anything
    (its composer recurses in C): the same values counted in the same order, every node an
    alias too, each at its depth, so a refusal names the same value and line. True when the
    document has an alias.

    _Fallback where PyYAML reads the text otherwise: a `?` in a plain scalar inside a flow
    collection (`[a?b]`) ends the scalar for PyYAML, which then refuses the rest."""
    parser = yaml.CSafeLoader(text)
    flow: list[bool] = []  # per open collection: whether it is a flow one
    nodes = 0
    aliases = False
    try:
        while parser.check_event():
            event = parser.get_event()
            if isinstance(event, _NODE_EVENTS):
                line = event.start_mark.line + 1 if event.start_mark else None
                nodes += 1
                if nodes > MAX_NODES:
                    raise _Refused(f"the file holds more than {MAX_NODES} values; split it", line)
                if len(flow) + 1 > MAX_DEPTH:
                    raise _Refused(f"values nest more than {MAX_DEPTH} levels deep", line)
                if isinstance(event, _COLLECTION_START):
                    flow.append(bool(event.flow_style) or bool(flow and flow[-1]))
                elif isinstance(event, yaml.AliasEvent):
                    aliases = True
                elif flow and flow[-1] and not event.style and "?" in event.value:
                    raise _Fallback
            elif isinstance(event, _COLLECTION_END):
                flow.pop()
    finally:
        parser.dispose()
    return aliases


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing documents that nest too deeply or hold too many values
    (counted as they are composed, before any is expanded or constructed)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0
        self.aliases = False  # whether the document has an alias (so far)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        line = event.start_mark.line + 1
        self.aliases = self.aliases or isinstance(event, yaml.AliasEvent)
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise _Refused(f"the file holds more than {MAX_NODES} values; split it", line)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(f"values nest more than {MAX_DEPTH} levels deep", line)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_expansion(root: yaml.Node) -> None:
    """Refuse aliases that expand too far (billion laughs), nest too deep, or loop.

    Iterative, and each node is measured once however many aliases name it, so this is
    linear in the composed document however large its expansion would be.
    """
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    open_nodes: set[int] = set()  # on the path from the root: an alias to one is a loop
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            open_nodes.discard(key)
            children = _children(node)
            size[key] = min(1 + sum(size[id(c)] for c in children), MAX_EXPANDED_NODES + 1)
            depth[key] = 1 + max((depth[id(c)] for c in children), default=0)
            line = node.start_mark.line + 1
            if size[key] > MAX_EXPANDED_NODES:
                raise _Refused(
                    f"aliases expand to more than {MAX_EXPANDED_NODES} values "
                    "(an alias bomb?); refused",
                    line,
                )
            if depth[key] > MAX_DEPTH:
                raise _Refused(
                    f"values nest more than {MAX_DEPTH} levels deep (with aliases)", line
                )
            continue
        if key in size:
            continue
        if key in open_nodes:
            raise _Refused("an alias refers to a value that contains it", node.start_mark.line + 1)
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in size)


def _yaml_problem(exc: yaml.MarkedYAMLError, shown: str) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark else None
    message = f"invalid YAML: {exc.problem or exc.context}"
    if exc.problem and exc.context and exc.context_mark:
        started = exc.context_mark.line + 1
        if started != line:
            message += f" ({exc.context} that starts on line {started})"
    return Problem(message, shown, line)


def _key_name(data: Any, field: str | None) -> str | None:
    """The name of the key a `keys[i]...` field belongs to, when it has a usable one."""
    match = re.match(r"keys\[(\d+)\]", field or "")
    if not match:
        return None
    try:
        name = data["keys"][int(match.group(1))].get("name")
    except (KeyError, IndexError, TypeError, AttributeError):
        return None
    return name if isinstance(name, str) else None


def _walk(
    node: yaml.Node,
    path: YamlPath,
    lines: dict[YamlPath, int],
    raw: dict[YamlPath, str],
    file: str,
    problems: list[Problem],
) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.ScalarNode) and not node.style:  # plain: None, libyaml ''
        raw[path] = node.value  # as written: 0123, no, 1.10 (YAML reads 83, False, 1.1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                kind = "list" if isinstance(key_node, yaml.SequenceNode) else "mapping"
                raise _Refused(
                    f"{dotted(path) or 'the document'}: a mapping key must be a plain value, "
                    f"not a {kind}",
                    key_node.start_mark.line + 1,
                )
            key = key_node.value
            if key in seen:
                problems.append(
                    Problem(
                        f"'{key}' appears twice in the same mapping (first on line {seen[key]})",
                        file,
                        key_node.start_mark.line + 1,
                        dotted((*path, key)),
                    )
                )
            else:
                seen[key] = key_node.start_mark.line + 1
            child = (*path, key)
            _walk(value_node, child, lines, raw, file, problems)
            lines[child] = key_node.start_mark.line + 1  # a field's line is its key's line
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, i), lines, raw, file, problems)


def dotted(path: YamlPath) -> str:
    """`keys[0].tags['Cost Center']`: indexes in brackets, odd mapping keys quoted."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _IDENTIFIER.fullmatch(part):
            out += f"['{part}']"
        else:
            out += f".{part}" if out else part
    return out


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# -- pydantic errors -> problems ----------------------------------------------------------

# A list's own check names the item it blames as `[3]: ...`.
_FIELD_PREFIX = re.compile(
    r"^((?:[a-z_]+|\[\d+\])(?:\[\d+\])*(?:\.[a-z_]+(?:\[\d+\])*)*): (.*)$", re.DOTALL
)
_FIELD_PART = re.compile(r"([a-z_]+)|\[(\d+)\]")

# pydantic's own wording for type errors names Python types and model classes; say it in
# the inventory's terms instead.
_TYPE_MESSAGES = {
    "dict_type": "must be a mapping (field: value lines)",
    "model_type": "must be a mapping (field: value lines)",
    "model_attributes_type": "must be a mapping (field: value lines)",
    "list_type": "must be a list",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "int_type": "must be a whole number",
}


def _validate(
    model: type[Settings] | type[KeyFile] | type[KeySpec],
    data: Any,
    lines: dict[YamlPath, int],
    raw: dict[YamlPath, str],
    file: str,
    problems: list[Problem],
    *,
    prefix: YamlPath = (),
    whole: Any = None,
) -> Any:
    """The model, or None after adding its problems (``prefix``: where ``data`` sits in
    ``whole``, the file's document, for field paths and lines)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        document = data if whole is None else whole
        errors = exc.errors()
        if model is KeySpec:
            errors += _hidden_errors(data, errors)
        found = [
            _problem({**error, "loc": (*prefix, *error["loc"])}, document, lines, raw, file)
            for error in errors
        ]
        problems.extend(sorted(found, key=lambda p: p.line or 0))  # in reading order
        return None


# A key's cross-field checks (grant operations, rotation, key material, replicas against the
# key type) run only once every field is valid. These fields decide what the others may be:
# with one of them wrong, the checks cannot be run on a default in its place.
_DECIDING_FIELDS = frozenset({"key_spec", "key_usage", "origin", "multi_region"})


def _hidden_errors(data: Any, errors: list[Any]) -> list[Any]:
    """The cross-field errors that a key's field errors hid: validate again without the
    fields in error (every problem at once, as the README promises)."""
    if not isinstance(data, dict):
        return []
    failed = {e["loc"][0] for e in errors if e["loc"] and isinstance(e["loc"][0], str)}
    if not failed or failed & _DECIDING_FIELDS:
        return []
    try:
        KeySpec.model_validate({k: v for k, v in data.items() if k not in failed})
    except ValidationError as exc:
        return [e for e in exc.errors() if not (e["loc"] and e["loc"][0] in failed)]
    return []


def _problem(
    error: Any, data: Any, lines: dict[YamlPath, int], raw: dict[YamlPath, str], file: str
) -> Problem:
    loc: YamlPath = tuple(error["loc"])
    # pydantic puts union / validator names into the location; keep only real data paths.
    loc = _data_path(loc, data)
    message = str(error["msg"]).removeprefix("Value error, ")
    match = _FIELD_PREFIX.match(message)
    if match:
        loc = (*loc, *(name or int(index) for name, index in _FIELD_PART.findall(match.group(1))))
        message = match.group(2)
    kind = error["type"]
    if kind == "extra_forbidden":
        message = "unknown field"
    elif kind == "missing":
        message = "is required"
    elif kind in _TYPE_MESSAGES:
        message = f"{_TYPE_MESSAGES[kind]}, not {_describe(error.get('input'))}"
    value = error.get("input")
    written = raw.get(loc)
    if (
        isinstance(value, bool | int | float)
        and written is not None
        and written.lower() != str(value).lower()
        and kind != "missing"
    ):
        message += f" (written as {written})"
    line = None
    probe = loc
    while probe:
        if probe in lines:
            line = lines[probe]
            break
        probe = probe[:-1]
    field_path = dotted(loc) or None
    return Problem(message, file, line or 1, field_path, _key_name(data, field_path))


def _describe(value: Any) -> str:
    """A YAML value as the user wrote it, roughly: for 'must be a list, not ...'."""
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"'{value[:40]}'"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


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
