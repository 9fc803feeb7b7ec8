"""Render key policies from Jinja2 templates, inline documents or JSON files.

Templates arrive in pull requests, so they run in Jinja2's ``SandboxedEnvironment`` (no
attribute access to Python internals) with ``StrictUndefined`` (a missing variable is an
error, never an empty string). Every failure names the template file and line.
"""

from __future__ import annotations

import bisect
import functools
import json
import re
import string
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from json.decoder import scanstring  # type: ignore[attr-defined]  # (not in typeshed)
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.loaders import split_template_path
from jinja2.sandbox import SandboxedEnvironment

from reconciler.loader import display_path
from reconciler.spec import PolicySource


class TemplateError(Exception):
    """A policy could not be produced; ``file`` and ``line`` say where.

    ``file`` is None when the key spec itself is wrong (a missing or escaping template or
    file name); ``field`` then names the policy-source field to blame ("template", "file").
    """

    def __init__(
        self, message: str, file: str | None, line: int | None = None, field: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.field = field


@dataclass(frozen=True)
class RenderedPolicy:
    document: dict[str, Any]
    text: str  # exactly what will be sent to KMS
    origin: str  # "template application.json.j2", "file x.json", "document", "default"
    file: str | None  # the file it came from, for messages


# A key policy is at most 32 KB; nothing a template builds needs to be much larger.
MAX_SIZE = 100_000
# Per render: loop iterations, calls and filter uses together; rendered characters; seconds.
MAX_STEPS = 100_000
MAX_OUTPUT = 1_000_000
MAX_SECONDS = 2.0
# A template or policy file larger than this is refused before it is parsed.
MAX_FILE_BYTES = 1024 * 1024

_ITERATE = "__kmsr_iterate"  # internal filters the bounded sandbox compiles templates with
_CONCAT = "__kmsr_concat"
_PRINTF_FIELD = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _too_big(*values: Any) -> bool:
    return any(isinstance(v, int) and not isinstance(v, bool) and abs(v) > MAX_SIZE for v in values)


class TemplateRefused(SecurityError):
    """A template went over one of the sandbox's bounds (size, steps, time)."""


class TemplateUnreadable(jinja2.TemplateError):
    """A template file that may not or cannot be read (outside policies/, too big, not UTF-8)."""


def _check_printf(fmt: str) -> None:
    """Refuse printf-style formats (``'%0999999999d' % 0``) whose widths are too large."""
    for match in _PRINTF_FIELD.finditer(fmt):
        for number in match.groups():
            if number and number != "*" and int(number[:7]) > MAX_SIZE:
                raise TemplateRefused(f"the format width or precision {number} is too large")


def _check_format_spec(fmt: str) -> None:
    """Refuse ``str.format`` templates (``'{:>999999999}'``) with huge or indirect widths."""
    try:
        fields = list(string.Formatter().parse(fmt))
    except ValueError:
        return  # malformed: str.format itself reports it
    for _, _, spec, _ in fields:
        if not spec:
            continue
        if "{" in spec:
            raise TemplateRefused("format specs taken from arguments ('{:{}}') are not allowed")
        for number in re.findall(r"\d+", spec):
            if int(number[:7]) > MAX_SIZE:
                raise TemplateRefused(f"the format width or precision {number} is too large")


def _text_size(value: Any) -> int:
    return len(value) if isinstance(value, str) else len(str(value))


def _check_text(size: int, what: str) -> None:
    if size > MAX_SIZE:
        raise TemplateRefused(f"{what} would make a text of {size} characters (at most {MAX_SIZE})")


class _Budget:
    """What one render may still spend: steps (loop iterations, calls, filters) and time."""

    def __init__(self) -> None:
        self.steps = 0
        self.deadline = time.monotonic() + MAX_SECONDS

    def tick(self) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise TemplateRefused(
                f"the template runs more than {MAX_STEPS} loop iterations and calls"
            )
        self.check_time()

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateRefused(f"rendering took longer than {MAX_SECONDS:g} seconds")


class BoundedSandbox(SandboxedEnvironment):
    """Jinja's sandbox, plus bounds on what a template can make the renderer allocate.

    The sandbox stops access to Python internals; these bounds stop a template from
    exhausting memory or time with ``'a' * 10**9``, ``2 ** 10**9``, ``x.center(10**9)``,
    ``'%0999999999d' % 0``, nested ``range(100000)`` loops or a macro that calls itself
    twice. Loops and ``~`` are compiled through internal filters that count and measure.
    """

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._local = threading.local()
        self.filters = {name: self._bounded(name, f) for name, f in self.filters.items()}
        self.filters[_ITERATE] = self._iterate
        self.filters[_CONCAT] = self._concat
        lipsum = self.globals.get("lipsum")
        if callable(lipsum):
            self.globals["lipsum"] = _bounded_lipsum(lipsum)

    # -- the budget of the current render ---------------------------------------------

    @property
    def budget(self) -> _Budget:
        budget: _Budget | None = getattr(self._local, "budget", None)
        if budget is None:
            budget = self._local.budget = _Budget()
        return budget

    def start_render(self) -> _Budget:
        budget = self._local.budget = _Budget()
        return budget

    # -- compiled-in checks -----------------------------------------------------------

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        for loop in list(tree.find_all(nodes.For)):
            loop.iter = nodes.Filter(loop.iter, _ITERATE, [], [], None, None, lineno=loop.lineno)
        for concat in list(tree.find_all(nodes.Concat)):
            parts = nodes.List(concat.nodes, lineno=concat.lineno)
            concat.nodes = [nodes.Filter(parts, _CONCAT, [], [], None, None, lineno=concat.lineno)]
        return tree

    def _iterate(self, value: Any) -> Iterator[Any]:
        budget = self.budget
        for item in value:
            budget.tick()
            yield item

    def _concat(self, values: list[Any]) -> str:
        texts = [str(v) for v in values]
        _check_text(sum(map(len, texts)), "joining with ~")
        return "".join(texts)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and (_too_big(left) or (isinstance(right, int) and right > 64)):
            raise TemplateRefused(f"the power {left!r} ** {right!r} is too large")
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                sized = isinstance(seq, str | list | tuple | bytes) and isinstance(n, int)
                if sized and len(seq) * n > MAX_SIZE:
                    kind = type(seq).__name__
                    raise TemplateRefused(f"repeating a {kind} {n} times is too large")
        if operator == "+":
            both = (str, str), (list, list), (tuple, tuple)
            if any(isinstance(left, a) and isinstance(right, b) for a, b in both):
                _check_text(len(left) + len(right), "adding")
        if operator == "%" and isinstance(left, str):
            _check_printf(left)
            values = right if isinstance(right, tuple) else (right,)
            if _too_big(*values):
                raise TemplateRefused(f"a number above {MAX_SIZE} passed to a % format")
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        __self.budget.tick()
        name = getattr(__obj, "__name__", type(__obj).__name__).removeprefix("safe_")
        if _too_big(*args, *kwargs.values()):
            raise TemplateRefused(f"a number above {MAX_SIZE} passed to {name}")
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            args = _check_str_method(owner, name, args)
        elif isinstance(owner, list) and name in ("extend", "append", "insert") and args:
            added = len(args[0]) if name == "extend" and hasattr(args[0], "__len__") else 1
            if len(owner) + added > MAX_SIZE:
                raise TemplateRefused(f"a list of more than {MAX_SIZE} items")
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            _check_format_spec(value.__self__)
        return wrapped

    def _bounded(self, name: str, func: Any) -> Any:
        check = _FILTER_CHECKS.get(name)

        @functools.wraps(func)
        def bounded(*args: Any, **kwargs: Any) -> Any:
            self.budget.tick()
            if _too_big(*args[1:], *kwargs.values()):
                raise TemplateRefused(f"a number above {MAX_SIZE} passed to a filter")
            if check is not None:
                args, kwargs = check(args, kwargs)
            result = func(*args, **kwargs)
            if isinstance(result, str):
                _check_text(len(result), f"the filter {name}")
            return result

        return bounded


def _bounded_lipsum(lipsum: Callable[..., str]) -> Callable[..., str]:
    """Filler text, at most 100 paragraphs of 100 words (``lipsum(100000)`` is megabytes)."""

    @functools.wraps(lipsum)
    def bounded(*args: Any, **kwargs: Any) -> str:
        if any(isinstance(v, int) and v > 100 for v in (*args, *kwargs.values())):
            raise TemplateRefused("lipsum makes at most 100 paragraphs of 100 words")
        return lipsum(*args, **kwargs)

    return bounded


def _check_str_method(owner: str, name: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Bounds for the str methods whose result can be far larger than their inputs."""
    if name == "join" and args:
        items = list(args[0])
        size = sum(_text_size(i) for i in items) + len(owner) * max(len(items) - 1, 0)
        _check_text(size, "join")
        return (items, *args[1:])
    if name == "replace" and len(args) >= 2:
        old, new = str(args[0]), str(args[1])
        _check_text(len(owner) + (owner.count(old) + 1) * max(len(new) - len(old), 0), "replace")
    if name == "expandtabs":
        width = args[0] if args and isinstance(args[0], int) else 8
        _check_text(len(owner) + owner.count("\t") * max(width, 0), "expandtabs")
    if name in ("translate", "maketrans"):
        raise TemplateRefused(f"str.{name} is not available in policy templates")
    return args


Args = tuple[Any, ...]
Kwargs = dict[str, Any]


def _argument(args: Args, kwargs: Kwargs, index: int, name: str, default: Any) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _check_join(args: Args, kwargs: Kwargs) -> tuple[Args, Kwargs]:
    # do_join(eval_ctx, value, d="", attribute=None)
    items = list(args[1]) if len(args) > 1 else []
    separator = str(_argument(args, kwargs, 2, "d", ""))
    size = sum(_text_size(i) for i in items) + len(separator) * max(len(items) - 1, 0)
    _check_text(size, "join")
    return (args[0], items, *args[2:]), kwargs


def _check_replace(args: Args, kwargs: Kwargs) -> tuple[Args, Kwargs]:
    # do_replace(eval_ctx, s, old, new, count=None)
    text = str(_argument(args, kwargs, 1, "s", ""))
    old = str(_argument(args, kwargs, 2, "old", ""))
    new = str(_argument(args, kwargs, 3, "new", ""))
    _check_text(len(text) + (text.count(old) + 1) * max(len(new) - len(old), 0), "replace")
    return args, kwargs


def _check_indent(args: Args, kwargs: Kwargs) -> tuple[Args, Kwargs]:
    # do_indent(s, width=4, first=False, blank=False)
    text = str(_argument(args, kwargs, 0, "s", ""))
    width = _argument(args, kwargs, 1, "width", 4)
    per_line = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    _check_text(len(text) + (text.count("\n") + 1) * per_line, "indent")
    return args, kwargs


def _check_wordwrap(args: Args, kwargs: Kwargs) -> tuple[Args, Kwargs]:
    # do_wordwrap(environment, s, width=79, break_long_words=True, wrapstring=None, ...)
    text = str(_argument(args, kwargs, 1, "s", ""))
    width = _argument(args, kwargs, 2, "width", 79)
    wrap = _argument(args, kwargs, 4, "wrapstring", None)
    lines = len(text) // max(width if isinstance(width, int) else 1, 1) + 1
    _check_text(len(text) + lines * len(str(wrap or "\n")), "wordwrap")
    return args, kwargs


def _check_format(args: Args, kwargs: Kwargs) -> tuple[Args, Kwargs]:
    # do_format(value, *args, **kwargs): printf-style
    if args and isinstance(args[0], str):
        _check_printf(args[0])
    return args, kwargs


def _check_sum(args: Args, kwargs: Kwargs) -> tuple[Args, Kwargs]:
    # do_sum(environment, iterable, attribute=None, start=0): adding lists is quadratic
    start = _argument(args, kwargs, 3, "start", 0)
    if not isinstance(start, int | float):
        raise TemplateRefused("sum adds numbers only (start must be a number)")
    return args, kwargs


_FILTER_CHECKS: dict[str, Callable[[Args, Kwargs], tuple[Args, Kwargs]]] = {
    "join": _check_join,
    "replace": _check_replace,
    "indent": _check_indent,
    "wordwrap": _check_wordwrap,
    "format": _check_format,
    "sum": _check_sum,
}


class _InsideLoader(jinja2.BaseLoader):
    """Loads templates from one folder and nowhere else.

    Jinja's FileSystemLoader refuses '..' in names but follows symbolic links wherever
    they lead, so ``{% include 'env.j2' %}`` with ``env.j2 -> /proc/self/environ`` would
    read the process environment. Here every name, after following links, must be a
    regular file inside the folder, of at most MAX_FILE_BYTES, in UTF-8.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.sources: dict[str, str] = {}  # file name -> source, as parsed

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        path = self.folder.joinpath(*split_template_path(template))
        shown = display_path(self.folder)
        try:
            real = path.resolve(strict=True)
            inside = real.is_relative_to(self.folder.resolve())
        except FileNotFoundError:
            raise jinja2.TemplateNotFound(template) from None
        except (OSError, RuntimeError):  # a symlink loop
            raise TemplateUnreadable(f"template '{template}' cannot be read") from None
        if not inside:
            raise TemplateUnreadable(
                f"template '{template}' is a symbolic link that leads outside {shown}/; refused"
            )
        if not real.is_file():
            raise jinja2.TemplateNotFound(template)
        source = read_text_bounded(real, f"template '{template}'", TemplateUnreadable)
        self.sources[str(path)] = source
        mtime = real.stat().st_mtime
        return source, str(path), lambda: real.exists() and real.stat().st_mtime == mtime


def read_text_bounded(
    path: Path, what: str, error: Callable[[str], Exception], limit: int = MAX_FILE_BYTES
) -> str:
    """A file's UTF-8 text, refusing files over ``limit`` bytes (read no further)."""
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise error(f"{what} cannot be read: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise error(f"{what} is larger than {limit} bytes; refused")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise error(
            f"{what} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line})"
        ) from None


class PolicyRenderer:
    """Renders policies relative to an inventory's `policies/` folder. Caches parsed templates."""

    def __init__(self, policies_dir: Path) -> None:
        self.policies_dir = policies_dir
        self.loader = _InsideLoader(policies_dir)
        self.env = BoundedSandbox(
            loader=self.loader,
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,  # templates do not change during a run: parse each once
            # No optimizer pass: it tries to fold every constant sub-expression at compile
            # time, ~0.6 ms of a template's ~5 ms compile (validate's start-up compiles
            # every template, benchmarks/sandbox.md), and renders are no faster with it.
            optimized=False,
        )
        self._inside: set[tuple[str, str]] = set()  # (name, kind) found inside policies/
        # per template file: its source's tag spans and line starts, for the line map
        self._marks: dict[str, tuple[str, list[tuple[int, int]], list[int]]] = {}
        # per template: the context names it reads (``_reads``); rendered policies by
        # template and the values of those names
        self._names: dict[str, tuple[str, ...] | None] = {}
        self._rendered: dict[tuple[str, str], RenderedPolicy] = {}

    def render(self, source: PolicySource, context: Mapping[str, Any]) -> RenderedPolicy:
        if source.template is not None:
            return self._render_template(source.template, {**context, "vars": source.vars})
        if source.file is not None:
            return self._read_file(source.file)
        assert source.document is not None
        text = json.dumps(source.document, indent=2)
        return RenderedPolicy(dict(source.document), text, "inline document", None)

    def _shown(self, name: str) -> str:
        return display_path(self.policies_dir / name)

    def _check_inside(self, name: str, kind: str) -> None:
        """Refuse names that leave policies/: absolute, with '..', or through a symlink."""
        if (name, kind) in self._inside:
            return
        path = Path(name)
        inside = not path.is_absolute() and ".." not in path.parts
        if inside:
            resolved = (self.policies_dir / path).resolve()
            inside = resolved.is_relative_to(self.policies_dir.resolve())
        if not inside:
            raise TemplateError(
                f"policy {kind} '{name}' must be a path inside {display_path(self.policies_dir)}/",
                None,
                field=kind,
            )
        self._inside.add((name, kind))

    def _render_template(self, name: str, context: Mapping[str, Any]) -> RenderedPolicy:
        self._check_inside(name, "template")
        used = self._reads(name)
        memo_key = None
        if used is not None:
            memo_key = (name, repr([(n, context.get(n, _ABSENT)) for n in used]))
            found = self._rendered.get(memo_key)
            if found is not None:  # the same text; its own parsed document
                return replace(found, document=_parse(found.text, found.file or ""))
        rendered = self._render_anew(name, context)
        if memo_key is not None:
            self._rendered[memo_key] = rendered
        return rendered

    def _reads(self, name: str) -> tuple[str, ...] | None:
        """The context names a template (with what it includes or imports) can read, when
        its output depends on nothing else: then two keys that give it the same values get
        the same text, rendered once (most keys of an inventory share a template and its
        vars, and differ in names it does not read). None: render every time (a template
        whose includes cannot be told before rendering, or that draws random values)."""
        if name in self._names:
            return self._names[name]
        names: set[str] | None = set()
        seen: set[str] = set()
        todo = [name]
        try:
            while todo and names is not None:
                current = todo.pop()
                if current in seen:
                    continue
                seen.add(current)
                source = self.loader.get_source(self.env, current)[0]
                tree = self.env.parse(source)
                filters = {f.name for f in tree.find_all(nodes.Filter)}
                globals_ = {n.name for n in tree.find_all(nodes.Name)} & _RANDOM_GLOBALS
                if filters & _RANDOM_FILTERS or globals_:
                    names = None
                    break
                names |= meta.find_undeclared_variables(tree)  # (env globals not among them)
                for referenced in meta.find_referenced_templates(tree):
                    if referenced is None:  # a name computed while rendering
                        names = None
                        break
                    todo.append(referenced)
        except (jinja2.TemplateError, TemplateUnreadable, OSError):
            names = None  # rendering reports it, at its line
        used = tuple(sorted(names)) if names is not None else None
        self._names[name] = used
        return used

    def _render_anew(self, name: str, context: Mapping[str, Any]) -> RenderedPolicy:
        shown = self._shown(name)
        try:
            template = self.env.get_template(name)
            text, lines = self._render_with_lines(template, context, with_lines=False)
        except jinja2.TemplateNotFound as exc:
            if exc.name == name:
                raise TemplateError(
                    f"policy template '{name}' not found in {display_path(self.policies_dir)}",
                    None,
                    field="template",
                ) from None
            where, line = self._where(exc, shown)
            raise TemplateError(
                f"template '{exc.name}' (included or imported) not found in "
                f"{display_path(self.policies_dir)}",
                where,
                line,
            ) from None
        except TemplateUnreadable as exc:
            where, line = self._where(exc, shown)
            raise TemplateError(str(exc), where, line) from None
        except jinja2.TemplateSyntaxError as exc:
            where = display_path(Path(exc.filename)) if exc.filename else shown
            raise TemplateError(
                f"template syntax error: {exc.message}", where, exc.lineno
            ) from None
        except jinja2.UndefinedError as exc:
            where, line = self._where(exc, shown)
            raise TemplateError(
                f"undefined template variable: {exc.message}", where, line
            ) from None
        except SecurityError as exc:
            where, line = self._where(exc, shown)
            raise TemplateError(
                f"unsafe template code refused by the sandbox: {exc}", where, line
            ) from None
        except jinja2.TemplateError as exc:
            where, line = self._where(exc, shown)
            raise TemplateError(f"template error: {exc}", where, line) from None
        except RecursionError as exc:
            where, line = self._where(exc, shown)
            raise TemplateError(
                "template error: recursion too deep (a macro that calls itself?)", where, line
            ) from None
        except MemoryError as exc:
            where, line = self._where(exc, shown)
            raise TemplateError(
                "template error: out of memory (the template builds too large a value)", where, line
            ) from None
        except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
            where, line = self._where(exc, shown)
            raise TemplateError(f"template error: {_one_line(exc)}", where, line) from None
        try:
            document = _parse(text, shown, lines)
        except TemplateError:
            # Not JSON: render again (the same text), noting the template line of each
            # chunk, so the error names the template line that produced the bad text.
            _, lines = self._render_with_lines(template, context, with_lines=True)
            document = _parse(text, shown, lines)
        return RenderedPolicy(document, text, f"template {name}", shown)

    def _render_with_lines(
        self, template: jinja2.Template, context: Mapping[str, Any], *, with_lines: bool
    ) -> tuple[str, _LineMap | None]:
        """Render like ``Template.render`` (bounded in size and time); ``with_lines`` also
        notes the template line of each output chunk, which only an error needs: a rendered
        policy that is not JSON is reported at the template line that produced the offending
        text, not at its line in the rendered output.
        """
        filename = template.filename or ""
        source = self.loader.sources.get(filename, "")
        marks = self._marks.get(filename)
        if with_lines and (marks is None or marks[0] is not source):
            tags = [m.span() for m in _JINJA_TAG.finditer(source)]
            line_starts = [0, *(m.end() for m in re.finditer("\n", source))]
            marks = self._marks[filename] = (source, tags, line_starts)
        chunks: list[str] = []
        lines = _LineMap() if with_lines else None
        offset = 0
        budget = self.env.start_render()
        try:
            generator = template.root_render_func(template.new_context(dict(context)))
            for chunk in generator:
                if offset + len(chunk) > MAX_OUTPUT:
                    raise TemplateRefused(f"the rendered policy is over {MAX_OUTPUT} characters")
                if lines is not None and marks is not None:
                    frame = getattr(generator, "gi_frame", None)
                    mark = template.get_corresponding_lineno(frame.f_lineno) if frame else 1
                    lines.add(offset, chunk, mark, source, marks[2], marks[1])
                chunks.append(chunk)
                offset += len(chunk)
                budget.check_time()
        except Exception:
            self.env.handle_exception()  # re-raises with the traceback in template lines
        return "".join(chunks), lines

    def _where(self, exc: BaseException, shown: str) -> tuple[str, int | None]:
        """The innermost template file and line an exception was raised at.

        Jinja rewrites tracebacks so that template code appears as frames of the template
        file; an error inside an imported macro or included file is shown there.
        """
        root = self.policies_dir.resolve()
        found: tuple[str, int | None] = (shown, None)
        tb = exc.__traceback__
        while tb is not None:
            filename = tb.tb_frame.f_code.co_filename
            path = Path(filename)
            if path.suffix != ".py" and path.resolve().is_relative_to(root):
                found = (display_path(path), tb.tb_lineno)
            tb = tb.tb_next
        return found

    def _read_file(self, name: str) -> RenderedPolicy:
        self._check_inside(name, "file")
        path = self.policies_dir / name
        shown = display_path(path)
        if not path.exists():
            raise TemplateError(
                f"policy file '{name}' not found in {display_path(self.policies_dir)}",
                None,
                field="file",
            )
        if not path.is_file():
            raise TemplateError(f"policy file '{name}' is not a regular file", None, field="file")
        text = read_text_bounded(path, "the policy file", lambda m: TemplateError(m, shown))
        return RenderedPolicy(_parse(text, shown), text, f"file {name}", shown)


# What makes a template's output differ between two renders of the same values.
_RANDOM_FILTERS = frozenset({"random", "shuffle"})
_RANDOM_GLOBALS = frozenset({"lipsum"})
_ABSENT = object()

_JINJA_TAG = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)


class _LineMap:
    """Rendered text offset -> template line, built chunk by chunk while rendering."""

    def __init__(self) -> None:
        self.starts: list[int] = []  # offset of each chunk in the rendered text
        self.spans: list[tuple[int, bool]] = []  # (template line, chunk is literal text)
        self.texts: list[str] = []
        self.last_line = 1
        self._tags: list[tuple[int, int]] = []
        self._tag_starts: list[int] = []

    def add(
        self,
        offset: int,
        chunk: str,
        mark: int,
        source: str,
        line_starts: list[int],
        tags: list[tuple[int, int]],
    ) -> None:
        """Record a chunk; `mark` is the line Jinja's debug info gives (the last tag)."""
        if self._tags is not tags:
            self._tags, self._tag_starts = tags, [a for a, _ in tags]
        tag_starts = self._tag_starts
        line, literal = mark, False
        # Literal template text appears verbatim in the source at or after its mark line,
        # outside any {{ }}, {% %} or {# #}; expression output does not.
        position = (
            source.find(chunk, line_starts[min(max(mark, 1), len(line_starts)) - 1])
            if chunk
            else -1
        )
        while position >= 0:
            end = position + len(chunk)
            # tags are sorted and disjoint: only the last one starting before `end` can overlap
            before = bisect.bisect_left(tag_starts, end) - 1
            if before < 0 or tags[before][1] <= position:
                line, literal = bisect.bisect_right(line_starts, position), True
                break
            position = source.find(chunk, position + 1)
        self.last_line = max(len(line_starts) - (source.endswith("\n")), 1)
        self.starts.append(offset)
        self.spans.append((line, literal))
        self.texts.append(chunk)

    def line_at(self, offset: int) -> int:
        if not self.starts:
            return 1
        index = max(bisect.bisect_right(self.starts, offset) - 1, 0)
        line, literal = self.spans[index]
        if literal:
            line += self.texts[index][: offset - self.starts[index]].count("\n")
        return min(line, self.last_line)


def _parse(text: str, shown: str, lines: _LineMap | None = None) -> dict[str, Any]:
    """Parse a rendered policy; a template's `lines` turn rendered offsets into its lines."""
    if not text.strip():
        raise TemplateError("rendered policy is empty", shown, lines.last_line if lines else 1)
    try:
        document = json.loads(text, object_pairs_hook=_no_duplicates)
    except _DuplicateMember:
        name, position = _first_duplicate(text)
        raise TemplateError(
            f"rendered policy has the member {json.dumps(name)} twice in one JSON object "
            "(JSON keeps only the last one; write it once)",
            shown,
            lines.line_at(position) if lines is not None else text.count("\n", 0, position) + 1,
        ) from None
    except RecursionError:
        raise TemplateError("rendered policy is nested too deeply", shown, 1) from None
    except json.JSONDecodeError as exc:
        line = lines.line_at(exc.pos) if lines is not None else exc.lineno
        rendered = text.splitlines()
        bad = rendered[exc.lineno - 1].strip() if exc.lineno <= len(rendered) else ""
        raise TemplateError(
            f"rendered policy is not valid JSON: {exc.msg} at rendered line {exc.lineno}, "
            f"column {exc.colno}: {bad[:60]!r}",
            shown,
            line,
        ) from None
    if not isinstance(document, dict):
        first = len(text) - len(text.lstrip())
        raise TemplateError(
            f"rendered policy is not a JSON object (it is a JSON {_json_kind(document)})",
            shown,
            lines.line_at(first) if lines is not None else text.count("\n", 0, first) + 1,
        )
    return document


class _DuplicateMember(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise _DuplicateMember
    return out


def _first_duplicate(text: str) -> tuple[str, int]:
    """The first member name repeated within one JSON object, and its offset in ``text``.

    A small scanner over valid JSON (json.loads has parsed it): a stack of the member
    names seen per open object; strings are skipped with the json module's own scanner.
    """
    stack: list[set[str] | None] = []  # one entry per open object (a set) or array (None)
    expecting_name = False
    i = 0
    while i < len(text):
        char = text[i]
        if char == '"':
            value, end = scanstring(text, i + 1)
            names = stack[-1] if stack else None
            if expecting_name and names is not None:
                if value in names:
                    return value, i
                names.add(value)
                expecting_name = False
            i = end
            continue
        if char == "{":
            stack.append(set())
            expecting_name = True
        elif char == "[":
            stack.append(None)
        elif char in "}]":
            stack.pop()
        elif char == ",":
            expecting_name = bool(stack) and stack[-1] is not None
        i += 1
    return "", 0


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"
