"""Render key policies from Jinja2 templates, inline documents or JSON files.

Templates arrive in pull requests, so they run in Jinja2's ``SandboxedEnvironment`` (no
attribute access to Python internals) with ``StrictUndefined`` (a missing variable is an
error, never an empty string). Every failure names the template file and line.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from reconciler.loader import display_path
from reconciler.spec import PolicySource


class TemplateError(Exception):
    """A policy could not be produced; ``file`` and ``line`` say where."""

    def __init__(self, message: str, file: str | None, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line


@dataclass(frozen=True)
class RenderedPolicy:
    document: dict[str, Any]
    text: str  # exactly what will be sent to KMS
    origin: str  # "template application.json.j2", "file x.json", "document", "default"
    file: str | None  # the file it came from, for messages


class PolicyRenderer:
    """Renders policies relative to an inventory's `policies/` folder. Caches parsed templates."""

    def __init__(self, policies_dir: Path) -> None:
        self.policies_dir = policies_dir
        self.env = SandboxedEnvironment(
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

    def _render_template(self, name: str, context: Mapping[str, Any]) -> RenderedPolicy:
        shown = self._shown(name)
        try:
            template = self.env.get_template(name)
            text = template.render(**context)
        except jinja2.TemplateNotFound:
            raise TemplateError(
                f"policy template '{name}' not found in {display_path(self.policies_dir)}",
                None,
            ) from None
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(
                f"template syntax error: {exc.message}", shown, exc.lineno
            ) from None
        except jinja2.UndefinedError as exc:
            raise TemplateError(
                f"undefined template variable: {exc.message}", shown, _template_line(exc, name)
            ) from None
        except jinja2.TemplateError as exc:  # includes SecurityError from the sandbox
            raise TemplateError(
                f"template error: {exc}", shown, _template_line(exc, name)
            ) from None
        except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
            raise TemplateError(
                f"template error: {exc}", shown, _template_line(exc, name)
            ) from None
        return RenderedPolicy(_parse(text, shown), text, f"template {name}", shown)

    def _read_file(self, name: str) -> RenderedPolicy:
        path = self.policies_dir / name
        shown = display_path(path)
        if ".." in Path(name).parts:
            raise TemplateError(f"policy file '{name}' must be inside policies/", None)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            raise TemplateError(f"policy file '{name}' not found", shown) from None
        return RenderedPolicy(_parse(text, shown), text, f"file {name}", shown)


def _parse(text: str, shown: str) -> dict[str, Any]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TemplateError(
            f"rendered policy is not valid JSON: {exc.msg} (rendered line {exc.lineno}, "
            f"column {exc.colno})",
            shown,
            exc.lineno,
        ) from None
    if not isinstance(document, dict):
        raise TemplateError("rendered policy is not a JSON object", shown, 1)
    return document


def _template_line(exc: BaseException, name: str) -> int | None:
    """The template line an exception was raised at, from Jinja's rewritten traceback."""
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith(name):
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
