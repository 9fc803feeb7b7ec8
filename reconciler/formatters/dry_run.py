"""``apply --dry-run``: the calls apply would make, as a shell script of AWS CLI commands.

Each operation is one ``aws kms`` command with the same parameters (``--kebab-case`` names,
lists as separate words, structures and policies as one-line JSON, booleans as ``--flag``
/ ``--no-flag``), so a
reviewer can read exactly what will be sent, or run it by hand. A key the plan creates is
captured in a shell variable (``KEY_app_data=$(aws kms create-key ... --query
KeyMetadata.KeyId --output text)``) that the later commands use. Importing key material is
not one command (the material is wrapped locally first): it is shown as a comment naming
the source only. ``--format json`` gives the same, one object per operation.
"""

from __future__ import annotations

import json
import re
import shlex
from datetime import date, datetime
from typing import Any

from reconciler import catalog
from reconciler.plan import Operation, OpKind, Plan, TargetPlan

# Parameters of the plan's operations that are the tool's, not the API's.
_TOOL_PARAMS = frozenset({"source", "root", "key_spec"})


def _kebab(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


def _variable(key: str) -> str:
    return "KEY_" + re.sub(r"\W", "_", key)


def _value(name: str, value: Any) -> list[str]:
    if name == "Policy" and isinstance(value, str):
        # one line per command: the same document, without its layout
        value = json.dumps(json.loads(value), separators=(",", ":"))
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return [shlex.quote(v) for v in value]
    if isinstance(value, (list, tuple, dict)):
        return [shlex.quote(json.dumps(value, separators=(",", ":"), default=str))]
    if isinstance(value, (datetime, date)):
        return [shlex.quote(value.isoformat())]
    return [shlex.quote(str(value))]


def _key_ref(op: Operation, tp: TargetPlan) -> str:
    key_id = op.key_id or next((k.key_id for k in tp.keys if k.name == op.key), None)
    return shlex.quote(key_id) if key_id else f'"${_variable(op.key)}"'


def aws_cli(op: Operation, tp: TargetPlan) -> str:
    """One operation as an ``aws kms`` command (or a comment, for an import)."""
    region = op.region or tp.target.region
    if op.kind is OpKind.IMPORT_KEY_MATERIAL:
        algorithm, wrapping_key = catalog.import_wrapping(
            str(op.params.get("key_spec") or catalog.SYMMETRIC_DEFAULT)
        )
        return (
            f"# {op.key}: import key material from {op.params['source']} into "
            f"{_key_ref(op, tp)} in {region} (GetParametersForImport with {wrapping_key}, "
            f"wrap the material locally with {algorithm}, then aws kms import-key-material): "
            "not one command"
        )
    words = ["aws", "kms", _kebab(op.kind.value), "--region", region]
    if op.kind in (OpKind.CREATE_ALIAS, OpKind.UPDATE_ALIAS):
        words += ["--target-key-id", _key_ref(op, tp)]
    elif op.kind not in (OpKind.CREATE_KEY, OpKind.DELETE_ALIAS):
        words += ["--key-id", _key_ref(op, tp)]
    for name, value in op.params.items():
        if name in _TOOL_PARAMS:
            continue
        if isinstance(value, bool):
            words.append(f"--{_kebab(name)}" if value else f"--no-{_kebab(name)}")
        else:
            words += [f"--{_kebab(name)}", *_value(name, value)]
    if op.kind is OpKind.CREATE_KEY:
        words += ["--query", "KeyMetadata.KeyId", "--output", "text"]
        return f"{_variable(op.key)}=$({' '.join(words)})"
    return " ".join(words)


def dry_run_text(plan: Plan) -> str:
    count = sum(len(tp.operations) for tp in plan.targets)
    lines = [
        f"# Dry run: apply would make these {count} KMS call(s), in order; none was made.",
        "# The same calls as AWS CLI commands (a shell script; new keys' IDs in variables).",
    ]
    for tp in plan.targets:
        if not tp.operations:
            continue
        t = tp.target
        lines.append(f"\n# target {t.name}: account {t.account_id}, {t.region}")
        for i, op in enumerate(tp.operations, 1):
            mark = "  # destructive" if op.destructive else ""
            lines.append(f"# {i}. {op.kind.value} {op.key}: {op.summary}")
            lines.append(aws_cli(op, tp) + mark)
    return "\n".join(lines) + "\n"


def dry_run_json(plan: Plan) -> str:
    operations = [
        {
            "target": tp.target.name,
            "index": i,
            "operation": op.kind.value,
            "key": op.key,
            "key_id": op.key_id or next((k.key_id for k in tp.keys if k.name == op.key), None),
            "region": op.region or tp.target.region,
            "destructive": op.destructive,
            "summary": op.summary,
            "aws_cli": aws_cli(op, tp),
        }
        for tp in plan.targets
        for i, op in enumerate(tp.operations, 1)
    ]
    return json.dumps({"format_version": 1, "dry_run": True, "operations": operations}, indent=2)
