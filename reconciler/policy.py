"""Key policies by meaning: canonical form, equality, statement diff and access analysis.

Pure: no I/O, no AWS. A policy is a parsed JSON document (``Mapping[str, Any]``).

Canonical form (what "policies compare by meaning" means here, DESIGN section 5):

- ``Version`` and ``Id`` (and any other top-level key) are kept as they are; ``Statement`` is
  always a list, treated as an unordered set: sorted by each statement's canonical JSON,
  exact duplicates removed.
- ``Principal`` / ``NotPrincipal``: ``"*"`` stays ``"*"``; otherwise a mapping of principal
  type -> sorted, de-duplicated list (a scalar is a one-element list). A 12-digit account ID
  in an ``AWS`` principal becomes ``arn:{partition}:iam::{id}:root``. ``{"AWS": "*"}`` (also
  ``{"AWS": ["*", ...]}``, with no other principal type) becomes ``"*"``: for a key policy
  both mean every AWS principal, so they canonicalise to the same thing.
- ``Action`` / ``NotAction`` / ``Resource`` / ``NotResource``: sorted, de-duplicated lists.
  Service prefixes are lower-cased (``KMS:Encrypt`` -> ``kms:Encrypt``) and exact KMS action
  names take the catalog's casing (``kms:encrypt`` -> ``kms:Encrypt``); wildcard patterns
  keep their text apart from the prefix.
- ``Condition``: operator -> condition key -> sorted, de-duplicated list of strings. Condition
  keys are lower-cased (IAM treats them case-insensitively), operators keep their case.
  JSON ``true`` / ``false`` / numbers / ``null`` become ``"true"`` / ``"false"`` / ``"1"`` /
  ``"null"`` since IAM compares strings. Empty operator blocks and an empty ``Condition`` are
  dropped (they constrain nothing). If two keys of one operator differ only by case their
  values are merged: such a policy is ambiguous and should not exist.
- ``Sid``, ``Effect`` and unknown statement keys are kept as they are.

Access analysis (``access``, ``denied``, ``can_manage_policy``) works on KMS actions only
(``catalog.KMS_ACTIONS``) and ignores ``Resource``: in a key policy the resource is the key
itself. ``access_changes`` and ``removes_access`` ask the policy-semantics engine
(``reconciler.semantics``), which decides exactly what a change allows and denies.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final, Literal, TypeAlias

from reconciler import catalog

Policy: TypeAlias = Mapping[str, Any]

__all__ = [
    "ALL_KMS_ACTIONS",
    "AccessChange",
    "Canonicals",
    "Grant",
    "Policy",
    "StatementChange",
    "access",
    "access_changes",
    "access_map",
    "can_manage_policy",
    "canonical_json",
    "canonicalize",
    "deleted_principals",
    "denied",
    "diff_statements",
    "expand_actions",
    "only_widens",
    "policies_equal",
    "removes_access",
    "validate_policy",
    "without_deleted_principals",
]

ALL_KMS_ACTIONS: Final[frozenset[str]] = frozenset(f"kms:{name}" for name in catalog.KMS_ACTIONS)
"""Every KMS permission as ``kms:Name``."""

DOCUMENT_SID: Final = "(document)"
"""The ``sid`` of the StatementChange that reports top-level (Version, Id) differences."""

PUT_KEY_POLICY: Final = "kms:PutKeyPolicy"

_KMS_BY_LOWER: Final[dict[str, str]] = {name.lower(): f"kms:{name}" for name in catalog.KMS_ACTIONS}
_TOP_LEVEL_KEYS: Final = ("Version", "Id", "Statement")
_VERSIONS: Final = ("2012-10-17", "2008-10-17")
_EFFECTS: Final = ("Allow", "Deny")
_PRINCIPAL_FIELDS: Final = ("Principal", "NotPrincipal")
_ACTION_FIELDS: Final = ("Action", "NotAction")
_RESOURCE_FIELDS: Final = ("Resource", "NotResource")
_STATEMENT_KEYS: Final = (
    "Sid",
    "Effect",
    *_PRINCIPAL_FIELDS,
    *_ACTION_FIELDS,
    *_RESOURCE_FIELDS,
    "Condition",
)
# Fields whose differences are reported per element ("Action: + kms:Decrypt").
_SET_FIELDS: Final = (*_PRINCIPAL_FIELDS, *_ACTION_FIELDS, *_RESOURCE_FIELDS, "Condition")
_PRINCIPAL_TYPES: Final = ("AWS", "Service", "Federated", "CanonicalUser")
# All used with fullmatch.
_ACCOUNT_ID: Final = re.compile(r"\d{12}")
_ROOT_ARN: Final = re.compile(r"arn:([\w-]+):iam::(\d{12}):root")
_ROLE_ARN: Final = re.compile(r"arn:([\w-]+):iam::(\d{12}):role/(?:[^/]+/)*([^/]+)")
_ASSUMED_ROLE_ARN: Final = re.compile(r"arn:([\w-]+):sts::(\d{12}):assumed-role/([^/]+)/[^/]+")
# What a key policy may name as an AWS principal: "*", an account ID, or an IAM or STS ARN
# (CloudFront origin access identities are IAM users of the pseudo-account "cloudfront").
_AWS_PRINCIPAL: Final = re.compile(r"\*|\d{12}|arn:aws[a-z-]*:(iam|sts)::(\d{12}|cloudfront):\S.*")
_SERVICE_PRINCIPAL: Final = re.compile(r"\*|[a-z0-9][a-z0-9.-]*\.amazonaws\.com(\.cn)?")
_MISSING: Final = object()
# A statement that is not a JSON object (only a fake KMS stores one) is kept under this key,
# so that comparing never fails and a change to it is still seen.
_NOT_AN_OBJECT: Final = "(not an object)"


# --------------------------------------------------------------------------- canonical form


# One encoder for every canonical text (json.dumps with options builds a new one per call).
_dumps: Final = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode


def _copy(value: Any) -> Any:
    """A deep, JSON-shaped copy, so canonical documents never share state with the input."""
    if isinstance(value, str | int | float | bool) or value is None:
        return value  # immutable: nothing to share (most values: Version, Sid, Effect)
    return json.loads(_dumps(value))


def _as_text(value: Any) -> str:
    """IAM compares strings: JSON true -> "true", 1 -> "1", null -> "null"."""
    return value if isinstance(value, str) else _dumps(value)


def _text_list(value: Any) -> list[str]:
    """Scalar or list -> sorted, de-duplicated list of strings."""
    if type(value) is str:  # the usual scalar ("Resource": "*"): nothing to convert
        return [value]
    items = value if isinstance(value, (list, tuple)) else [value]
    return sorted({item if type(item) is str else _as_text(item) for item in items})


def _root_arn(account_id: str, partition: str) -> str:
    return f"arn:{partition}:iam::{account_id}:root"


@lru_cache(maxsize=4096)  # a pure function of one string; policies repeat their actions
def _canonical_action(action: str) -> str:
    service, sep, name = action.partition(":")
    if not sep:
        return action  # "*" (or malformed, which validate_policy reports)
    service = service.lower()
    if service == "kms":
        return _KMS_BY_LOWER.get(name.lower(), f"kms:{name}")
    return f"{service}:{name}"


def _canonical_principal(value: Any, partition: str) -> Any:
    if value == "*":
        return "*"
    if type(value) is not dict and not isinstance(value, Mapping):  # the ABC check is slow
        return _copy(value)  # malformed; kept so that a change to it is still seen
    out: dict[str, list[str]] = {}
    for ptype, ids in value.items():
        values = _text_list(ids)
        if ptype == "AWS":
            values = sorted(
                {
                    _root_arn(v, partition) if len(v) == 12 and _ACCOUNT_ID.fullmatch(v) else v
                    for v in values
                }
            )
        out[str(ptype)] = values
    if set(out) == {"AWS"} and "*" in out["AWS"]:
        return "*"
    return out


def _canonical_condition(value: Any) -> Any:
    if type(value) is not dict and not isinstance(value, Mapping):
        return _copy(value)
    out: dict[str, Any] = {}
    for operator, block in value.items():
        if type(block) is not dict and not isinstance(block, Mapping):
            out[str(operator)] = _copy(block)
            continue
        keys: dict[str, set[str]] = {}
        for key, values in block.items():
            keys.setdefault(str(key).lower(), set()).update(_text_list(values))
        if keys:
            out[str(operator)] = {key: sorted(vals) for key, vals in keys.items()}
    return out


def _canonical_statement(statement: Mapping[str, Any], partition: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in statement.items():
        if key in _PRINCIPAL_FIELDS:
            out[key] = _canonical_principal(value, partition)
        elif key in _ACTION_FIELDS:
            out[key] = sorted({_canonical_action(a) for a in _text_list(value)})
        elif key in _RESOURCE_FIELDS:
            out[key] = _text_list(value)
        elif key == "Condition":
            condition = _canonical_condition(value)
            if condition != {}:
                out[key] = condition
        else:
            out[str(key)] = _copy(value)
    return out


def _raw_statements(doc: Policy) -> list[Any]:
    raw = doc.get("Statement")
    if raw is None:
        return []
    return list(raw) if isinstance(raw, (list, tuple)) else [raw]


def _canonical_parts(doc: Policy, partition: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The top-level fields but Statement, and the unique canonical statements by their
    compact JSON (the sort key of the canonical statement list)."""
    top = _top_level(doc)
    unique: dict[str, dict[str, Any]] = {}
    for statement in _raw_statements(doc):
        canonical = _canonical_any_statement(statement, partition)
        unique[_dumps(canonical)] = canonical
    return top, unique


def _top_level(doc: Policy) -> dict[str, Any]:
    if type(doc) is not dict and not isinstance(doc, Mapping):
        raise ValueError("a key policy must be a JSON object")
    return {str(k): _copy(v) for k, v in doc.items() if k != "Statement"}


def _canonical_any_statement(statement: Any, partition: str) -> dict[str, Any]:
    if type(statement) is dict or isinstance(statement, Mapping):
        return _canonical_statement(statement, partition)
    return {_NOT_AN_OBJECT: _copy(statement)}


def _statement_json(
    statement: Any,
    partition: str,
    memo: dict[str, str] | None,
    made: dict[str, dict[str, Any]] | None = None,
) -> str:
    """One statement's canonical JSON; with ``memo`` (statement repr -> canonical JSON, of
    one partition), each distinct statement is canonicalised once. ``repr`` tells apart
    what JSON text would not (true / 1 / 1.0, "true" / true keys): equal keys mean equal
    statements. ``made`` (with ``memo``) receives each canonical statement made, by repr."""
    if memo is None:
        return _dumps(_canonical_any_statement(statement, partition))
    key = repr(statement)
    text = memo.get(key)
    if text is None:
        canonical = _canonical_any_statement(statement, partition)
        text = memo[key] = _dumps(canonical)
        if made is not None:
            made[key] = canonical
    return text


def canonicalize(doc: Policy, *, partition: str = "aws") -> dict[str, Any]:
    """The canonical form of a key policy (see the module docstring).

    Raises ValueError when ``doc`` is not a JSON object. A statement that is not an object
    is kept as ``{"(not an object)": value}``; ``validate_policy`` reports every structural
    problem as a message.
    """
    top, unique = _canonical_parts(doc, partition)
    top["Statement"] = [unique[key] for key in sorted(unique)]
    return top


_SPLICE: Final = "\x00statements\x00"
_SPLICE_JSON: Final = _dumps(_SPLICE)  # the marker as it shows in the top level's JSON


def canonical_json(
    doc: Policy,
    *,
    partition: str = "aws",
    memo: dict[str, str] | None = None,
    made: dict[str, dict[str, Any]] | None = None,
) -> str:
    """The canonical form as compact JSON with sorted keys: equal strings = equal meaning.

    The same text as ``_dumps(canonicalize(doc))``, without encoding the statements twice:
    each statement's JSON is spliced into the top level's. ``memo``: canonical statements
    shared between calls (one partition's; ``Canonicals`` keeps one per plan): a template
    renders the same statements (root delegation, administrators) into every key, and a
    no-op plan's two sides hold the same statements. ``made`` (with ``memo``): receives the
    canonical statements that were not in ``memo``, by repr (``Canonicals`` keeps the
    recent ones for ``form``)."""
    top = _top_level(doc)
    statements = sorted({_statement_json(s, partition, memo, made) for s in _raw_statements(doc)})
    top["Statement"] = _SPLICE
    text = _dumps(top)
    if text.count(_SPLICE_JSON) != 1:  # a field holds the marker itself: no shortcut
        return _dumps(canonicalize(doc, partition=partition))
    return text.replace(_SPLICE_JSON, "[" + ",".join(statements) + "]", 1)


def policies_equal(a: Policy, b: Policy, *, partition: str = "aws") -> bool:
    """True when the two policies differ at most in formatting, order or equivalent spelling."""
    return canonical_json(a, partition=partition) == canonical_json(b, partition=partition)


class Canonicals:
    """Canonical forms computed once per policy document, for the life of one plan: the
    planner compares each key's two policies and the plan's fingerprint digests the observed
    one, so without it every policy would be canonicalised up to three times (a changed
    policy's diff, lockout check and access check read its canonical form again).

    Keyed by the document's identity; the memo keeps each document it has seen alive, so an
    ``id`` is never reused for another while the memo lives. Documents are never mutated
    once read or rendered (the planner and the fingerprint only read them), nor are the
    canonical forms it hands out (``form``): they are shared by every reader of the plan,
    and so are their statements, between every form that has one (a template's root
    delegation and administrators statements are in every key's).
    """

    # Canonical statements kept for ``form``, those made lately: ``json`` makes them when
    # the planner compares a key's two policies, and a changed policy's readers ask for its
    # two forms right after. When full, it is emptied (cheaper than evicting one by one;
    # the statements a template renders into every key are made again once).
    RECENT_STATEMENTS = 128

    def __init__(self, partition: str = "aws") -> None:
        self.partition = partition
        self._memo: dict[int, str] = {}
        # a form and its statements' JSON, in order (the last few)
        self._forms: dict[int, tuple[dict[str, Any], list[str]]] = {}
        self._seen: dict[int, Policy] = {}  # keeps every id in the memos taken
        self._statements: dict[str, str] = {}  # canonical_json's memo
        # statement repr -> canonical statement, the recent ones
        self._statement_forms: dict[str, dict[str, Any]] = {}

    def json(self, doc: Policy) -> str:
        text = self._memo.get(id(doc))
        if text is None:
            recent = self._statement_forms
            if len(recent) >= self.RECENT_STATEMENTS:
                recent.clear()
            text = canonical_json(doc, partition=self.partition, memo=self._statements, made=recent)
            self._memo[id(doc)] = text
            self._seen[id(doc)] = doc
        return text

    def form(self, doc: Policy) -> dict[str, Any]:
        """``canonicalize(doc)``, shared: never change it. Only the last few are kept (a
        key's readers ask one after the other), so the forms of 10,000 changed policies are
        not all held to the plan's end."""
        return self._form(doc)[0]

    def texts(self, doc: Policy) -> list[str]:
        """The JSON of each statement of ``form(doc)``, in the same order."""
        return self._form(doc)[1]

    def _form(self, doc: Policy) -> tuple[dict[str, Any], list[str]]:
        made = self._forms.get(id(doc))
        if made is None:
            if len(self._forms) >= 8:
                del self._forms[next(iter(self._forms))]
            made = self._forms[id(doc)] = self._canonicalize(doc)
            self._seen[id(doc)] = doc
        return made

    def _canonicalize(self, doc: Policy) -> tuple[dict[str, Any], list[str]]:
        """``canonicalize(doc)`` and its statements' JSON, each statement canonicalised at
        most once a plan while it is recent, its JSON (the sort key) taken from ``json``'s
        memo. Keyed, as that memo, by the statement's ``repr``: equal keys are the same
        statement, down to its keys' order and the types of its values, so the canonical
        statement is the same dict (``canonicalize`` keeps the input's key order, and the
        plan's JSON shows it)."""
        top = _top_level(doc)
        unique: dict[str, dict[str, Any]] = {}
        recent = self._statement_forms
        for statement in _raw_statements(doc):
            key = repr(statement)
            canonical = recent.get(key)
            if canonical is None:
                canonical = _canonical_any_statement(statement, self.partition)
                if len(recent) >= self.RECENT_STATEMENTS:
                    recent.clear()
                recent[key] = canonical
            text = self._statements.get(key)
            if text is None:
                text = self._statements[key] = _dumps(canonical)
            unique[text] = canonical
        texts = sorted(unique)
        top["Statement"] = [unique[text] for text in texts]
        return top, texts

    def equal(self, a: Policy, b: Policy) -> bool:
        """``json(a) == json(b)``, without canonicalising ``b`` when it is ``a`` again (a
        no-op key's desired policy, beside the observed one that the fingerprint reads).

        ``a == b`` alone would not do: it takes true for 1 and 1.0, which the canonical
        form tells apart (IAM compares "true" and "1"). But when every key and scalar of
        ``a`` is a string (in dicts and lists), only the same strings in the same places
        are equal to it: ``b`` is ``a`` but for its keys' order, which no canonical text
        keeps (sorted keys)."""
        text = self.json(a)
        if a == b and _only_strings(a):
            return True
        return text == self.json(b)


def _only_strings(value: Any) -> bool:
    """Every key and scalar in ``value`` is a ``str``, every container a ``dict`` or a
    ``list`` (exactly those types: what ``json.loads`` makes)."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            for key, inner in item.items():
                if type(key) is not str:
                    return False
                if type(inner) is not str:
                    stack.append(inner)
        elif kind is list:
            stack.extend(inner for inner in item if type(inner) is not str)
        elif kind is not str:
            return False
    return True


def _statement_texts(
    doc: Policy | None, form: Mapping[str, Any], canonicals: Canonicals | None
) -> list[str]:
    """The JSON of each statement of ``form``, ``doc``'s canonical form, in order."""
    if doc is not None and canonicals is not None:
        return canonicals.texts(doc)
    return [_dumps(s) for s in form["Statement"]]


def _canonical_or_empty(
    doc: Policy | None, partition: str, canonicals: Canonicals | None = None
) -> dict[str, Any]:
    if doc is None:
        return {"Statement": []}
    if canonicals is not None:
        return canonicals.form(doc)
    return canonicalize(doc, partition=partition)


# --------------------------------------------------------------------------- statement diff


@dataclass(frozen=True)
class StatementChange:
    """One statement added, removed or changed between two policies.

    ``sid`` is ``"(document)"`` (``DOCUMENT_SID``) for top-level Version / Id differences;
    then ``before`` / ``after`` hold the top-level fields without ``Statement``.
    ``details`` are human lines such as ``Action: + kms:Decrypt``,
    ``Principal.AWS: - arn:aws:iam::111122223333:role/X``, ``Effect: Allow -> Deny`` or
    ``Condition.StringEquals.kms:viaservice: + s3.us-east-1.amazonaws.com``.
    """

    kind: Literal["added", "removed", "changed"]
    sid: str | None
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    details: tuple[str, ...]


def _sid(statement: Mapping[str, Any]) -> str | None:
    sid = statement.get("Sid")
    return sid if isinstance(sid, str) else None


def _show(value: Any) -> str:
    if value is _MISSING:
        return "(none)"
    return value if isinstance(value, str) else _dumps(value)


def _elements(field: str, value: Any) -> set[tuple[str, str]]:
    """A set-valued field of a canonical statement as (path, element) pairs."""
    if value is _MISSING:
        return set()
    if field in _PRINCIPAL_FIELDS and isinstance(value, Mapping):
        return {(f"{field}.{ptype}", v) for ptype, ids in value.items() for v in _text_list(ids)}
    if field == "Condition" and isinstance(value, Mapping):
        pairs: set[tuple[str, str]] = set()
        for operator, block in value.items():
            if isinstance(block, Mapping):
                for key, values in block.items():
                    path = f"Condition.{operator}.{key}"
                    pairs.update((path, v) for v in _text_list(values))
            else:
                pairs.add((f"Condition.{operator}", _show(block)))
        return pairs
    if isinstance(value, list):
        return {(field, _show(v)) for v in value}
    return {(field, _show(value))}


def _field_details(field: str, before: Any, after: Any) -> list[str]:
    if field not in _SET_FIELDS:
        return [] if before == after else [f"{field}: {_show(before)} -> {_show(after)}"]
    old = _elements(field, before)
    new = _elements(field, after)
    lines: list[str] = []
    for path in sorted({path for path, _ in old ^ new}):
        lines += [f"{path}: - {v}" for p, v in sorted(old - new) if p == path]
        lines += [f"{path}: + {v}" for p, v in sorted(new - old) if p == path]
    return lines


def _mapping_details(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[str, ...]:
    known = [k for k in ("Version", "Id", *_STATEMENT_KEYS) if k in before or k in after]
    others = sorted((set(before) | set(after)) - set(known))
    lines: list[str] = []
    for field in (*known, *others):
        lines += _field_details(field, before.get(field, _MISSING), after.get(field, _MISSING))
    return tuple(lines)


def diff_statements(
    before: Policy | None,
    after: Policy | None,
    *,
    partition: str = "aws",
    canonicals: Canonicals | None = None,
) -> tuple[StatementChange, ...]:
    """Statement-level diff of two policies, compared in canonical form.

    Statements equal in canonical form match. Of the rest, statements with the same
    non-empty Sid pair up as "changed" with field-level details; the others are "removed"
    or "added". ``None`` (no policy yet, e.g. a key to create) has no statements and no
    document fields: every statement is then added (or removed) and no "(document)" entry
    is made. Order: the "(document)" entry (when both policies are given and their
    top-level fields such as Version / Id differ), then removed, changed, added, each
    sorted by Sid then JSON. With both policies given, the result is empty exactly when
    ``policies_equal``. ``canonicals``: a plan's memo of canonical forms (of ``partition``).
    """
    old = _canonical_or_empty(before, partition, canonicals)
    new = _canonical_or_empty(after, partition, canonicals)
    changes: list[StatementChange] = []

    old_top = {k: v for k, v in old.items() if k != "Statement"}
    new_top = {k: v for k, v in new.items() if k != "Statement"}
    if before is not None and after is not None and old_top != new_top:
        details = _mapping_details(old_top, new_top)
        changes.append(StatementChange("changed", DOCUMENT_SID, old_top, new_top, details))

    # each statement's JSON (what matches it across the two, and its sort key), once
    text = {
        id(s): t
        for doc, form in ((before, old), (after, new))
        for s, t in zip(form["Statement"], _statement_texts(doc, form, canonicals), strict=True)
    }

    def order(statement: Mapping[str, Any]) -> tuple[str, str]:
        return (_sid(statement) or "", text[id(statement)])

    new_keys = {text[id(s)] for s in new["Statement"]}
    old_keys = {text[id(s)] for s in old["Statement"]}
    removed = sorted((s for s in old["Statement"] if text[id(s)] not in new_keys), key=order)
    added = sorted((s for s in new["Statement"] if text[id(s)] not in old_keys), key=order)

    paired: list[tuple[dict[str, Any], dict[str, Any]]] = []
    common = {_sid(s) or "" for s in removed} & {_sid(s) or "" for s in added}
    for sid in sorted(common - {""}):
        olds = [s for s in removed if _sid(s) == sid]
        news = [s for s in added if _sid(s) == sid]
        # Sids should be unique; if not, pair them in canonical order, leave the rest.
        for pair in zip(olds, news, strict=False):
            paired.append(pair)
            removed.remove(pair[0])
            added.remove(pair[1])

    changes += [StatementChange("removed", _sid(s), s, None, ()) for s in removed]
    changes += [
        StatementChange("changed", _sid(o), o, n, _mapping_details(o, n))
        for o, n in sorted(paired, key=lambda pair: order(pair[0]))
    ]
    changes += [StatementChange("added", _sid(s), None, s, ()) for s in added]
    return tuple(changes)


# --------------------------------------------------------------------------- access analysis


@dataclass(frozen=True)
class Grant:
    """One principal's KMS access from one Allow statement, wildcards expanded.

    ``principal`` is ``"*"``, ``"AWS:arn:..."``, ``"Service:logs.amazonaws.com"``,
    ``"Federated:..."``, ``"CanonicalUser:..."``, or for an Allow with NotPrincipal
    ``"NotPrincipal:<the excluded principals, comma separated>"``.
    ``conditions`` is the canonical JSON of the statement's Condition ("" when none).
    """

    principal: str
    actions: frozenset[str]
    conditions: str
    sid: str | None


@dataclass(frozen=True)
class AccessChange:
    """Actions one principal gains and loses under one condition context ("" = none).

    ``witness`` is the engine's proof in words: a request that is newly allowed (or newly
    denied), e.g. "newly allowed: arn:aws:iam::444455556666:role/X may call kms:Decrypt
    when kms:ViaService = s3.us-east-1.amazonaws.com"."""

    principal: str
    gained: frozenset[str]
    lost: frozenset[str]
    conditions: str
    witness: str = ""


@lru_cache(maxsize=512)
def _glob(pattern: str) -> re.Pattern[str]:
    body = "".join(
        ".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern
    )
    return re.compile(body, re.IGNORECASE | re.DOTALL)


def _action_matches(pattern: str, action: str) -> bool:
    return _glob(pattern).fullmatch(action) is not None


def expand_actions(patterns: Iterable[str]) -> frozenset[str]:
    """The KMS actions (``kms:Name``) that IAM action patterns cover.

    ``*`` and ``?`` are IAM wildcards, matching is case-insensitive, ``"*"`` and ``"kms:*"``
    are every action in ``catalog.KMS_ACTIONS``, non-KMS actions are ignored. A literal KMS
    action missing from the catalog (a new or misspelt name) is kept as written, so that a
    review still shows it. A single string is taken as one pattern.
    """
    if isinstance(patterns, str):
        patterns = [patterns]
    found: set[str] = set()
    for pattern in patterns:
        matched = {action for action in ALL_KMS_ACTIONS if _action_matches(pattern, action)}
        if matched:
            found |= matched
            continue
        canonical = _canonical_action(pattern)
        if canonical.startswith("kms:") and not any(c in pattern for c in "*?"):
            found.add(canonical)
    return frozenset(found)


def _statement_actions(statement: Mapping[str, Any]) -> frozenset[str]:
    if "Action" in statement:
        return expand_actions(_text_list(statement["Action"]))
    if "NotAction" in statement:
        return ALL_KMS_ACTIONS - expand_actions(_text_list(statement["NotAction"]))
    return frozenset()


def _statement_covers_action(statement: Mapping[str, Any], action: str) -> bool:
    if "Action" in statement:
        return any(_action_matches(p, action) for p in _text_list(statement["Action"]))
    if "NotAction" in statement:
        return not any(_action_matches(p, action) for p in _text_list(statement["NotAction"]))
    return False


def _principal_strings(value: Any) -> list[str]:
    """A canonical Principal value as sorted "Type:value" strings ("AWS:*" is "*")."""
    if value == "*":
        return ["*"]
    if not isinstance(value, Mapping):
        return [_show(value)]
    found = {f"{ptype}:{v}" for ptype, ids in value.items() for v in _text_list(ids)}
    return sorted({"*" if p == "AWS:*" else p for p in found})


def _normalize_principal(principal: str, partition: str) -> str:
    """A caller's principal (ARN, account ID or "Type:value") as a "Type:value" string."""
    if principal == "*":
        return "*"
    ptype, sep, value = principal.partition(":")
    if not (sep and ptype in _PRINCIPAL_TYPES):
        ptype, value = "AWS", principal
    if ptype == "AWS" and _ACCOUNT_ID.fullmatch(value):
        value = _root_arn(value, partition)
    if ptype == "AWS" and value == "*":
        return "*"
    return f"{ptype}:{value}"


def _role_identity(arn: str) -> tuple[str, str, str] | None:
    """(partition, account, role name) of an IAM role ARN or an STS assumed-role ARN."""
    match = _ROLE_ARN.fullmatch(arn) or _ASSUMED_ROLE_ARN.fullmatch(arn)
    return (match.group(1), match.group(2), match.group(3)) if match else None


def _principal_covers(entry: str, who: str, *, account_wide: bool) -> bool:
    """Whether a policy principal entry ("Type:value") applies to the principal ``who``.

    A role ARN (with or without a path) covers the role's STS sessions: account and final
    role name are compared. With ``account_wide``, the account root also covers every
    principal of that account; used for Deny statements, where that is the conservative
    reading.
    """
    if entry in ("*", who):
        return True
    if not (entry.startswith("AWS:") and who.startswith("AWS:")):
        return False
    entry_arn, who_arn = entry[4:], who[4:]
    entry_role = _role_identity(entry_arn)
    if entry_role is not None and entry_role == _role_identity(who_arn):
        return True
    root = _ROOT_ARN.fullmatch(entry_arn)
    if account_wide and root:
        return who_arn.split(":")[4:5] == [root.group(2)]
    return False


def _condition_json(statement: Mapping[str, Any]) -> str:
    condition = statement.get("Condition")
    return _dumps(condition) if condition else ""


def _grants(canonical: Mapping[str, Any]) -> list[Grant]:
    grants: list[Grant] = []
    for statement in canonical["Statement"]:
        if statement.get("Effect") != "Allow":
            continue
        actions = _statement_actions(statement)
        if not actions:
            continue
        if "NotPrincipal" in statement:
            excluded = ",".join(_principal_strings(statement["NotPrincipal"]))
            principals = [f"NotPrincipal:{excluded}"]
        elif "Principal" in statement:
            principals = _principal_strings(statement["Principal"])
        else:
            continue
        conditions = _condition_json(statement)
        sid = _sid(statement)
        grants += [Grant(p, actions, conditions, sid) for p in principals]
    return sorted(grants, key=lambda g: (g.principal, g.conditions, g.sid or "", sorted(g.actions)))


def access(doc: Policy, *, partition: str = "aws") -> tuple[Grant, ...]:
    """Who the Allow statements give which KMS actions, one Grant per principal and statement.

    NotAction is all KMS actions minus the listed ones. Deny statements are not applied
    here (see ``denied``). Statements that grant no KMS action are left out. Sorted by
    principal, conditions, Sid.
    """
    return tuple(_grants(canonicalize(doc, partition=partition)))


def _denied(canonical: Mapping[str, Any], who: str, action: str) -> bool:
    for statement in canonical["Statement"]:
        if statement.get("Effect") != "Deny" or "Condition" in statement:
            continue
        if not _statement_covers_action(statement, action):
            continue
        if "Principal" in statement:
            entries = _principal_strings(statement["Principal"])
            if any(_principal_covers(e, who, account_wide=True) for e in entries):
                return True
        elif "NotPrincipal" in statement and who not in _principal_strings(
            statement["NotPrincipal"]
        ):
            # Deny everyone except the listed principals. Only an exact entry exempts (AWS
            # wants the session or role ARN *and* its account listed), the safe reading.
            return True
    return False


def denied(doc: Policy, principal: str, action: str, *, partition: str = "aws") -> bool:
    """True when an unconditional Deny statement covers this principal and action.

    ``principal`` is an ARN, an account ID, ``"*"`` or a ``"Type:value"`` string as in
    ``Grant.principal``. A Deny naming ``"*"``, the principal, its role (for an STS
    assumed-role ARN) or its account root applies. Deny statements with a Condition are
    ignored (they may or may not apply), as is Resource.
    """
    canonical = canonicalize(doc, partition=partition)
    return _denied(canonical, _normalize_principal(principal, partition), action)


def access_map(doc: Policy | None, partition: str = "aws") -> dict[tuple[str, str], frozenset[str]]:
    """Actions per (principal, conditions JSON): every Allow grant of the policy merged."""
    if doc is None:
        return {}
    merged: dict[tuple[str, str], frozenset[str]] = {}
    for grant in access(doc, partition=partition):
        key = (grant.principal, grant.conditions)
        merged[key] = merged.get(key, frozenset()) | grant.actions
    return merged


def access_changes(
    before: Policy | None,
    after: Policy | None,
    *,
    partition: str = "aws",
    account_id: str | None = None,
    region: str | None = None,
    canonicals: Canonicals | None = None,
) -> tuple[AccessChange, ...]:
    """Who gains and who loses which KMS actions from before to after, as proven by the
    policy-semantics engine (``reconciler.semantics``), each with a witness request.
    ``canonicals``: a plan's memo of canonical policies (of ``partition``).

    One AccessChange per principal, direction and witness context; ``conditions`` is the
    canonical Condition of the Allow statement that grants the access (after's for a gain,
    before's for a loss). A reformat, reorder or any rewrite that allows exactly the same
    requests yields (). Sorted by principal, then conditions.
    """
    from reconciler import semantics  # semantics reads the canonical form from here

    found = semantics.compare(
        before,
        after,
        partition=partition,
        account_id=account_id,
        region=region,
        canonical=canonicals.json if canonicals is not None else None,
    )
    changes = [
        AccessChange(
            d.principal,
            d.actions if d.change == "allowed" else frozenset(),
            d.actions if d.change == "denied" else frozenset(),
            d.conditions,
            d.witness,
        )
        for d in found
    ]
    return tuple(
        sorted(changes, key=lambda c: (c.principal, c.conditions, bool(c.lost), c.witness))
    )


def removes_access(
    before: Policy | None,
    after: Policy | None,
    *,
    partition: str = "aws",
    canonicals: Canonicals | None = None,
) -> bool:
    """True when the change denies some request the before policy allowed, so a plan marks
    it destructive (the engine proves it: a Deny or a condition that takes nothing away
    is not destructive). With no ``before`` policy nothing can be lost. ``canonicals``: a
    plan's memo of canonical policies (of ``partition``)."""
    if before is None:
        return False
    if after is not None and only_widens(before, after, partition=partition, canonicals=canonicals):
        return False  # plainly so: the engine (milliseconds a policy) is not needed
    changes = access_changes(before, after, partition=partition, canonicals=canonicals)
    return any(change.lost for change in changes)


def only_widens(
    before: Policy, after: Policy, *, partition: str = "aws", canonicals: Canonicals | None = None
) -> bool:
    """True when ``after`` plainly allows every request ``before`` allows: the same
    top-level fields (Version decides what a policy variable means), no statement but an
    Allow that ``before`` lacks, and each Allow of ``before`` kept by an Allow of ``after``
    that differs from it at most by more principals, actions or resources (or its Sid).
    Adding to an Allow never denies a request (an explicit Deny decides first, and no Deny
    was added). False means "not plainly so": ask the engine (``access_changes``).
    ``canonicals``: a plan's memo of canonical forms (of ``partition``)."""
    try:
        if canonicals is not None:
            old, new = canonicals.form(before), canonicals.form(after)
        else:
            old, new = (
                canonicalize(before, partition=partition),
                canonicalize(after, partition=partition),
            )
    except ValueError:
        return False
    top = [{k: v for k, v in doc.items() if k != "Statement"} for doc in (old, new)]
    if not _same(top[0], top[1]):
        return False
    olds, news = old["Statement"], new["Statement"]
    kept = {_dumps(s) for s in olds if s.get("Effect") != "Allow"}
    if any(s.get("Effect") != "Allow" and _dumps(s) not in kept for s in news):
        return False
    allows = [s for s in news if s.get("Effect") == "Allow"]
    return all(any(_covers(wide, s) for wide in allows) for s in olds if s.get("Effect") == "Allow")


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON (``==`` alone takes true for 1). Only the same strings in the same
    places equal a value of only strings (``Canonicals.equal``): then no JSON is needed."""
    if a != b:
        return False
    return _only_strings(a) or _dumps(a) == _dumps(b)


def _covers(wide: Mapping[str, Any], narrow: Mapping[str, Any]) -> bool:
    """Canonical Allow statement ``wide`` matches every request ``narrow`` matches: the same
    fields, each equal but Principal (a mapping), Action and Resource, which may only grow."""
    if wide.keys() - {"Sid"} != narrow.keys() - {"Sid"}:
        return False
    for field, value in narrow.items():
        if field == "Sid":
            continue
        other = wide[field]
        if field in ("Action", "Resource") and isinstance(value, list):
            if not isinstance(other, list) or not set(value) <= set(other):
                return False
        elif field == "Principal" and isinstance(value, Mapping) and isinstance(other, Mapping):
            if any(not set(ids) <= set(other.get(kind, ())) for kind, ids in value.items()):
                return False
        elif not _same(value, other):
            return False
    return True


def in_region(doc: Policy, region: str, as_region: str) -> Policy:
    """The policy with every mention of ``region`` read as ``as_region``.

    A multi-Region key's replica has its own policy, usually the primary's rendered for
    the replica's Region (``kms:ViaService`` = ``s3.eu-west-1.amazonaws.com``, the key's own
    ARN): read in the primary's Region, two such policies are equal."""
    if region == as_region:
        return doc
    text = json.dumps(doc)
    return dict(json.loads(text.replace(region, as_region)))


def replica_divergence(
    primary: Policy | None,
    replica: Policy | None,
    *,
    primary_region: str,
    replica_region: str,
    partition: str = "aws",
    account_id: str | None = None,
) -> tuple[AccessChange, ...]:
    """What a replica's policy allows beyond its primary's (``gained``) and what it no
    longer allows (``lost``), Region names aside (``in_region``), proven by the engine.

    The members of a multi-Region key share key material: a principal the replica allows
    to decrypt can decrypt what was encrypted under the primary, in any Region."""
    if primary is None or replica is None:
        return ()
    return access_changes(
        primary,
        in_region(replica, replica_region, primary_region),
        partition=partition,
        account_id=account_id,
        region=primary_region,
    )


def deleted_principals(doc: Policy | None) -> list[tuple[str | None, list[str]]]:
    """(Sid, unique IDs) of each statement naming a deleted IAM role or user.

    KMS rewrites a deleted principal to its unique ID (AROA..., AIDA...;
    ``catalog.UNIQUE_ID_PRINCIPAL``) in Principal or NotPrincipal. Such an entry matches no
    caller: a principal re-created under the same name has a new unique ID.
    """
    if not isinstance(doc, Mapping):
        return []
    found: list[tuple[str | None, list[str]]] = []
    for statement in _raw_statements(doc):
        if not isinstance(statement, Mapping):
            continue
        ids = sorted(
            {
                v
                for field in _PRINCIPAL_FIELDS
                if isinstance(statement.get(field), Mapping)
                for v in _text_list(statement[field].get("AWS", []))
                if catalog.UNIQUE_ID_PRINCIPAL.fullmatch(v)
            }
        )
        if ids:
            found.append((_sid(statement), ids))
    return found


def without_deleted_principals(doc: Policy) -> Policy:
    """The policy as KMS evaluates it once its deleted principals match nobody.

    Unique-ID entries (see ``deleted_principals``) are dropped from Principal and
    NotPrincipal; a statement left with no principal is dropped (it applies to nobody), and
    a NotPrincipal left empty excludes nobody ("Principal": "*"). Compare this, not the
    policy as read, so that a deleted role is not a principal "gaining" access and putting
    its ARN back does not "remove" any. Returns ``doc`` itself when nothing is deleted.
    """
    if not deleted_principals(doc):
        return doc

    def strip(statement: Any) -> Any:
        if not isinstance(statement, Mapping):
            return statement
        out = dict(statement)
        for field in _PRINCIPAL_FIELDS:
            value = out.get(field)
            if not isinstance(value, Mapping) or "AWS" not in value:
                continue
            kept = [
                v for v in _text_list(value["AWS"]) if not catalog.UNIQUE_ID_PRINCIPAL.fullmatch(v)
            ]
            rest = {k: v for k, v in value.items() if k != "AWS"}
            if kept:
                rest["AWS"] = kept
            if rest:
                out[field] = rest
            elif field == "Principal":
                return None  # applies to nobody
            else:
                del out[field]
                out["Principal"] = "*"
        return out

    statements = [s for s in map(strip, _raw_statements(doc)) if s is not None]
    return {**doc, "Statement": statements}


def can_manage_policy(
    doc: Policy,
    principals: Iterable[str],
    *,
    account_id: str,
    partition: str = "aws",
    canonicals: Canonicals | None = None,
) -> bool:
    """Lockout check: can someone who should still change this policy do so?

    True when an Allow statement without Condition grants ``kms:PutKeyPolicy`` (directly
    or through a wildcard, or via NotAction) to the account's root
    (``arn:{partition}:iam::{account_id}:root`` or the bare ID), to ``"*"``, or to one of
    ``principals``, and no unconditional Deny takes it away from that principal.
    ``principals`` may be IAM user / role ARNs or STS assumed-role ARNs; a role matches
    by account and final role name, so paths and session names do not matter.
    ``canonicals``: a plan's memo of canonical forms (of ``partition``).
    """
    if isinstance(principals, str):
        principals = [principals]
    canonical = (
        canonicals.form(doc) if canonicals is not None else canonicalize(doc, partition=partition)
    )
    root = _normalize_principal(account_id, partition)
    candidates = [root, *(_normalize_principal(p, partition) for p in principals)]
    entries: list[str] = []
    excluded_sets: list[list[str]] = []
    for statement in canonical["Statement"]:
        if statement.get("Effect") != "Allow" or "Condition" in statement:
            continue
        if not _statement_covers_action(statement, PUT_KEY_POLICY):
            continue
        if "Principal" in statement:
            entries += _principal_strings(statement["Principal"])
        elif "NotPrincipal" in statement:
            excluded_sets.append(_principal_strings(statement["NotPrincipal"]))
    for who in candidates:
        allowed = any(_principal_covers(e, who, account_wide=False) for e in entries) or any(
            who not in excluded for excluded in excluded_sets
        )
        if allowed and not _denied(canonical, who, PUT_KEY_POLICY):
            return True
    return False


# --------------------------------------------------------------------------- validation


def _is_text_list(value: Any) -> bool:
    if isinstance(value, str):
        return True
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _quote(value: Any) -> str:
    return f"'{value}'" if isinstance(value, str) else _dumps(value)


def _principal_value_problems(field: str, ptype: str, values: list[str]) -> list[str]:
    """Principals KMS would refuse (MalformedPolicyDocumentException), by type."""
    if ptype == "AWS":
        return [
            f'{field}.AWS: {_quote(v)} is not an AWS account ID, an IAM or STS ARN, or "*"'
            for v in values
            if not _AWS_PRINCIPAL.fullmatch(v)
        ]
    if ptype == "Service":
        return [
            f"{field}.Service: {_quote(v)} is not a service principal (like logs.amazonaws.com)"
            for v in values
            if not _SERVICE_PRINCIPAL.fullmatch(v)
        ]
    return []


def _statement_problems(statement: Mapping[str, Any]) -> list[str]:
    problems = [f"unknown key {_quote(k)}" for k in statement if k not in _STATEMENT_KEYS]
    if "Sid" in statement and not isinstance(statement["Sid"], str):
        problems.append("Sid must be a string")
    if "Effect" not in statement:
        problems.append("missing Effect")
    elif statement["Effect"] not in _EFFECTS:
        problems.append(f"Effect must be 'Allow' or 'Deny', not {_quote(statement['Effect'])}")
    for field, other in (_PRINCIPAL_FIELDS, _ACTION_FIELDS, _RESOURCE_FIELDS):
        if field not in statement and other not in statement:
            problems.append(f"missing {field}")
        elif field in statement and other in statement:
            problems.append(f"both {field} and {other}")
    for field in _PRINCIPAL_FIELDS:
        value = statement.get(field, "*")
        if value == "*":
            continue
        if not isinstance(value, Mapping) or not value:
            problems.append(f'{field} must be "*" or an object of principal types')
            continue
        for ptype, ids in value.items():
            if ptype not in _PRINCIPAL_TYPES:
                problems.append(f"{field}: unknown principal type {_quote(ptype)}")
            if not _is_text_list(ids) or ids == []:
                problems.append(f"{field}.{ptype} must be a string or a list of strings")
                continue
            problems += _principal_value_problems(
                field, ptype, [ids] if isinstance(ids, str) else ids
            )
    for field in (*_ACTION_FIELDS, *_RESOURCE_FIELDS):
        if field in statement and (not _is_text_list(statement[field]) or statement[field] == []):
            problems.append(f"{field} must be a string or a non-empty list of strings")
    if "Condition" in statement:
        condition = statement["Condition"]
        if not isinstance(condition, Mapping) or not all(
            isinstance(block, Mapping) for block in condition.values()
        ):
            problems.append("Condition must map operators to objects of condition keys")
    return problems


def validate_policy(doc: Any) -> list[str]:
    """Structural problems of a parsed key policy as short messages; [] when it is fine.

    Statements are numbered from 0 in their order in the document, e.g.
    ``Statement[2] (Sid 'AllowUse'): missing Principal``. This checks the grammar only,
    not whether principals exist or whether the policy locks anyone out.
    """
    if not isinstance(doc, Mapping):
        return ["policy is not a JSON object"]
    problems = [f"unknown top-level key {_quote(k)}" for k in doc if k not in _TOP_LEVEL_KEYS]
    if "Version" in doc and doc["Version"] not in _VERSIONS:
        version = _quote(doc["Version"])
        problems.append(f"Version must be '2012-10-17' or '2008-10-17', not {version}")
    if "Id" in doc and not isinstance(doc["Id"], str):
        problems.append("Id must be a string")
    if "Statement" not in doc:
        return [*problems, "missing Statement"]
    raw = doc["Statement"]
    if not isinstance(raw, (list, Mapping)):
        return [*problems, "Statement must be an object or a list of objects"]
    statements = [raw] if isinstance(raw, Mapping) else raw
    if not statements:
        problems.append("Statement is empty")
    for index, statement in enumerate(statements):
        label = f"Statement[{index}]"
        if not isinstance(statement, Mapping):
            problems.append(f"{label}: not a JSON object")
            continue
        sid = statement.get("Sid")
        if isinstance(sid, str) and sid:
            label += f" (Sid '{sid}')"
        problems += [f"{label}: {problem}" for problem in _statement_problems(statement)]
    return problems
