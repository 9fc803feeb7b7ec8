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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError
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


def _too_big(*values: Any) -> bool:
    return any(isinstance(v, int) and not isinstance(v, bool) and abs(v) > MAX_SIZE for v in values)


class BoundedSandbox(SandboxedEnvironment):
    """Jinja's sandbox, plus bounds on what a template can make the renderer allocate.

    The sandbox stops access to Python internals; these bounds stop a template from
    exhausting memory or time with ``'a' * 10**9``, ``2 ** 10**9`` or ``x.center(10**9)``.
    """

    intercepted_binops = frozenset({"*", "**"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters = {name: _bounded(f) for name, f in self.filters.items()}

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and (_too_big(left) or (isinstance(right, int) and right > 64)):
            raise SecurityError(f"the power {left!r} ** {right!r} is too large")
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                sized = isinstance(seq, str | list | tuple) and isinstance(n, int)
                if sized and len(seq) * n > MAX_SIZE:
                    raise SecurityError(f"repeating a {type(seq).__name__} {n} times is too large")
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        if _too_big(*args, *kwargs.values()):
            name = getattr(__obj, "__name__", type(__obj).__name__).removeprefix("safe_")
            raise SecurityError(f"a number above {MAX_SIZE} passed to {name}")
        return super().call(__context, __obj, *args, **kwargs)


def _bounded(func: Any) -> Any:
    @functools.wraps(func)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        if _too_big(*args[1:], *kwargs.values()):
            raise SecurityError(f"a number above {MAX_SIZE} passed to a filter")
        return func(*args, **kwargs)

    return bounded


class PolicyRenderer:
    """Renders policies relative to an inventory's `policies/` folder. Caches parsed templates."""

    def __init__(self, policies_dir: Path) -> None:
        self.policies_dir = policies_dir
        self.env = BoundedSandbox(
            loader=jinja2.FileSystemLoader(str(policies_dir)),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )

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

    def _render_template(self, name: str, context: Mapping[str, Any]) -> RenderedPolicy:
        self._check_inside(name, "template")
        shown = self._shown(name)
        try:
            template = self.env.get_template(name)
            text, lines = self._render_with_lines(template, context)
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
        except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
            where, line = self._where(exc, shown)
            raise TemplateError(f"template error: {exc}", where, line) from None
        return RenderedPolicy(_parse(text, shown, lines), text, f"template {name}", shown)

    def _render_with_lines(
        self, template: jinja2.Template, context: Mapping[str, Any]
    ) -> tuple[str, _LineMap]:
        """Render like ``Template.render``, noting the template line of each output chunk.

        A rendered policy that is not JSON is then reported at the template line that
        produced the offending text, not at its line in the rendered output.
        """
        source = Path(template.filename).read_text(encoding="utf-8") if template.filename else ""
        tags = [m.span() for m in _JINJA_TAG.finditer(source)]
        line_starts = [0] + [i + 1 for i, c in enumerate(source) if c == "\n"]
        chunks: list[str] = []
        lines = _LineMap()
        offset = 0
        try:
            generator = template.root_render_func(template.new_context(dict(context)))
            for chunk in generator:
                frame = getattr(generator, "gi_frame", None)
                mark = template.get_corresponding_lineno(frame.f_lineno) if frame else 1
                lines.add(offset, chunk, mark, source, line_starts, tags)
                chunks.append(chunk)
                offset += len(chunk)
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
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise TemplateError(
                f"policy file '{name}' not found in {display_path(self.policies_dir)}",
                None,
                field="file",
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise TemplateError(f"cannot read policy file: {exc}", shown) from None
        return RenderedPolicy(_parse(text, shown), text, f"file {name}", shown)


_JINJA_TAG = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)


class _LineMap:
    """Rendered text offset -> template line, built chunk by chunk while rendering."""

    def __init__(self) -> None:
        self.starts: list[int] = []  # offset of each chunk in the rendered text
        self.spans: list[tuple[int, bool]] = []  # (template line, chunk is literal text)
        self.texts: list[str] = []
        self.last_line = 1

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
            if not any(a < end and position < b for a, b in tags):
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
        document = json.loads(text)
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
