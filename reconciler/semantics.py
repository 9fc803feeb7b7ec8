"""What a key policy allows, decided exactly: two policies -> who gains or loses what, proven.

Pure: no AWS, no I/O. ``compare(base, head)`` returns, per principal and KMS action, every
request the head allows that the base denied ("newly allowed") and the reverse ("newly
denied"), each with a witness: the principal, the actions and the condition context of one
such request. The string, number, date, IP and set reasoning is done by the z3 SMT solver;
when the canonical forms (``policy.canonical_json``) are equal, or every statement that
applies is unconditional, no solver is asked.

Modelled from the IAM policy evaluation logic, as it applies to a key policy evaluated on
its own (IAM User Guide: "Policy evaluation logic", "IAM JSON policy elements: Condition
operators", "Single-valued vs. multivalued context keys", "IAM policy elements: Variables
and tags"; KMS Developer Guide: "Key policies", "AWS KMS condition keys"):

- a request is (principal, action, resource, context); it is allowed when some Allow
  statement matches it and no Deny statement does: an explicit Deny wins, and a request
  no Allow matches is implicitly denied;
- a statement matches when its Principal / NotPrincipal, Action / NotAction,
  Resource / NotResource and every Condition operator block match (the keys of one block
  all must match; a block's values for one key are alternatives, negated operators
  negate the alternatives);
- principals: ``"*"`` is everyone; an account ID is its root ARN. An Allow naming the
  account root delegates to the account: it allows the root, and a role or user of that
  account only together with an IAM policy, which this engine does not see, so here it
  allows neither. A Deny naming the account root denies every principal of the account.
  A role ARN covers the role's sessions (account and role name compared, paths ignored).
  NotPrincipal excludes exactly the principals it names (a role by its ARN);
- actions: the KMS actions of ``catalog.KMS_ACTIONS``; ``*`` / ``?`` wildcards,
  case-insensitive. A name that is not a KMS action (a typo, another service) grants and
  denies nothing;
- resources: the key itself, ``arn:PARTITION:kms:REGION:ACCOUNT:key/ID`` (Region and
  account fixed when the caller knows them); Resource patterns are case-sensitive globs;
- condition operators: String(Not)Equals, String(Not)EqualsIgnoreCase, String(Not)Like
  (``*`` and ``?``), Numeric*, Date* (ISO 8601 or epoch seconds), Bool, BinaryEquals
  (compared as text), IpAddress / NotIpAddress (IPv4 and IPv6 CIDRs), ArnEquals / ArnLike /
  ArnNotEquals / ArnNotLike (each of the six colon-separated parts matched on its own),
  Null, the ``IfExists`` suffix and the ``ForAllValues:`` / ``ForAnyValue:`` prefixes;
- condition key names are case-insensitive, values case-sensitive but for
  ``*IgnoreCase``; Bool compares ``true`` / ``false`` case-insensitively; a key of type
  Boolean (``_BOOLEAN_KEYS``) holds ``true`` or ``false``, any other key any text;
- in a Version 2012-10-17 policy, ``${*}``, ``${?}`` and ``${$}`` in a condition value are
  the characters themselves, never wildcards;
- a key missing from the request: a positive operator does not match, a negated one
  (``...Not...``) does, ``...IfExists`` matches, ``Null: true`` matches;
  ``ForAllValues`` matches an empty or missing set, ``ForAnyValue`` does not. A key
  that is not a KMS or global condition key (``catalog.known_condition_key``: a typo
  such as ``aws:SourceAcount``) is never in a request; nor is a KMS key for an action it
  does not apply to (``_ACTION_KEYS``, from the KMS condition-key reference);
- multi-valued keys (``catalog.MULTI_VALUED_CONDITION_KEYS``) are sets; the solver sees as
  many elements as the two policies have conditions on the key, which is enough for an
  exact answer (each condition needs at most one element to be made true or false). A
  single-valued operator on a multi-valued key is read as "any value matches" (negated:
  "no value matches");
- principal-bound keys (aws:PrincipalArn, aws:PrincipalAccount, kms:CallerAccount,
  aws:PrincipalType, aws:PrincipalIsAWSService, aws:PrincipalServiceName) take the named
  principal's values; an unnamed principal (``"*"``, another principal of an account)
  has none of the named principals' aws:PrincipalArn / aws:PrincipalServiceName.

Left out: identity-based policies, grants, SCPs / RCPs, permission boundaries and session
policies (the key policy is judged alone); policy variables (``${aws:username}``), which
are compared as literal text, and the escapes in Resource; the link between a key's text
and its number / date / IP reading (the solver may pick them independently); the exact rules
for which global keys a given caller or service sends (any known global key may be present
or absent); aws:PrincipalOrgID and tags of named principals (free); NotPrincipal's
session-ARN subtleties (a role is exempted by its role ARN).
"""

from __future__ import annotations

import ipaddress
import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, Final, Literal

import z3

from reconciler import catalog

__all__ = [
    "Difference",
    "compare",
    "equivalent",
]

ALL_ACTIONS: Final[tuple[str, ...]] = tuple(sorted(f"kms:{a}" for a in catalog.KMS_ACTIONS))
EVERYONE: Final = "*"
_TIMEOUT_MS: Final = 10_000

_ACCOUNT_ID: Final = re.compile(r"\d{12}")
_ARN_ACCOUNT: Final = re.compile(r"arn:([\w-]+):(?:iam|sts)::(\d{12}):(.*)")
_ROLE: Final = re.compile(r"role/(?:[^/]+/)*([^/]+)")
_ASSUMED_ROLE: Final = re.compile(r"assumed-role/([^/]+)/[^/]+")
_OTHER_SUFFIX: Final = ":(another principal)"

_CRYPTO: Final = (
    "Encrypt",
    "Decrypt",
    "ReEncryptFrom",
    "ReEncryptTo",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
)
# KMS condition keys that a request carries only for some actions (KMS Developer Guide,
# "AWS KMS condition keys", the "API operations" column of each key). A key not listed
# here may be in any request.
_ACTION_KEYS: Final[Mapping[str, tuple[str, ...]]] = {
    "kms:bypasspolicylockoutsafetycheck": ("CreateKey", "PutKeyPolicy"),
    "kms:datakeypairspec": ("GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext"),
    "kms:encryptionalgorithm": (*_CRYPTO, "CreateGrant"),
    "kms:encryptioncontextkeys": (*_CRYPTO, "CreateGrant"),
    "kms:expirationmodel": ("ImportKeyMaterial",),
    "kms:grantconstrainttype": ("CreateGrant",),
    "kms:grantisforawsresource": ("CreateGrant", "ListGrants", "RevokeGrant"),
    "kms:grantoperations": ("CreateGrant",),
    "kms:granteeprincipal": ("CreateGrant",),
    "kms:keyagreementalgorithm": ("DeriveSharedSecret",),
    "kms:macalgorithm": ("GenerateMac", "VerifyMac"),
    "kms:messagetype": ("Sign", "Verify"),
    "kms:primaryregion": ("UpdatePrimaryRegion",),
    "kms:reencryptonsamekey": ("ReEncryptFrom", "ReEncryptTo"),
    "kms:replicaregion": ("ReplicateKey",),
    "kms:retiringprincipal": ("CreateGrant",),
    "kms:rotationperiodindays": ("EnableKeyRotation",),
    "kms:schedulekeydeletionpendingwindowindays": ("ScheduleKeyDeletion",),
    "kms:signingalgorithm": ("Sign", "Verify"),
    "kms:validto": ("ImportKeyMaterial",),
    "kms:wrappingalgorithm": ("GetParametersForImport",),
    "kms:wrappingkeyspec": ("GetParametersForImport",),
}
_ACTION_KEY_PREFIXES: Final[Mapping[str, tuple[str, ...]]] = {
    "kms:encryptioncontext:": (*_CRYPTO, "CreateGrant"),
    "kms:recipientattestation:": (
        "Decrypt",
        "DeriveSharedSecret",
        "GenerateDataKey",
        "GenerateDataKeyPair",
        "GenerateRandom",
    ),
}
# Keys that tell one named principal from every other.
_IDENTITY_KEYS: Final = frozenset({"aws:principalarn", "aws:principalservicename"})
# Keys whose value the principal fixes.
_PRINCIPAL_KEYS: Final = frozenset(
    {
        "aws:principalarn",
        "aws:principalaccount",
        "kms:calleraccount",
        "aws:principaltype",
        "aws:principalisawsservice",
        "aws:principalservicename",
    }
)

# Keys of type Boolean (IAM global condition keys, KMS condition keys): a request carries
# "true" or "false". Other keys hold any text, also under a Bool operator (which then
# matches only the text "true" / "false").
_BOOLEAN_KEYS: Final = frozenset(
    {
        "aws:multifactorauthpresent",
        "aws:principalisawsservice",
        "aws:securetransport",
        "aws:viaawsservice",
        "kms:bypasspolicylockoutsafetycheck",
        "kms:grantisforawsresource",
        "kms:multiregion",
        "kms:reencryptonsamekey",
    }
)

_STRING_OPS: Final = {
    "StringEquals": ("eq", False),
    "StringNotEquals": ("eq", True),
    "StringEqualsIgnoreCase": ("ieq", False),
    "StringNotEqualsIgnoreCase": ("ieq", True),
    "StringLike": ("like", False),
    "StringNotLike": ("like", True),
    "ArnEquals": ("arn", False),
    "ArnLike": ("arn", False),
    "ArnNotEquals": ("arn", True),
    "ArnNotLike": ("arn", True),
    "BinaryEquals": ("eq", False),
    "Bool": ("bool", False),
    "NumericEquals": ("num=", False),
    "NumericNotEquals": ("num=", True),
    "NumericLessThan": ("num<", False),
    "NumericLessThanEquals": ("num<=", False),
    "NumericGreaterThan": ("num>", False),
    "NumericGreaterThanEquals": ("num>=", False),
    "DateEquals": ("date=", False),
    "DateNotEquals": ("date=", True),
    "DateLessThan": ("date<", False),
    "DateLessThanEquals": ("date<=", False),
    "DateGreaterThan": ("date>", False),
    "DateGreaterThanEquals": ("date>=", False),
    "IpAddress": ("ip", False),
    "NotIpAddress": ("ip", True),
}
_V6_BASE: Final = 2**32
_UNDECIDED: Final = "(undecided: the solver gave up, so this may or may not be a change)"
# z3's Python API shares one context: one solver at a time (plan, drift and apply may
# run targets on threads).
_SOLVER_LOCK: Final = threading.Lock()


# --------------------------------------------------------------------------- results


Witness = tuple[tuple[str, str | None], ...]
"""A witness request's condition context: (key, value), value None when the key is absent."""


@dataclass(frozen=True)
class Difference:
    """Requests of one principal for some actions that one policy allows and the other not.

    ``principal`` is ``"*"`` (any principal: a principal whose difference is the same as
    the one of a principal neither policy names is not listed apart), ``"AWS:<arn>"``,
    ``"Service:<name>"`` (as ``policy.Grant.principal``), or
    ``"AWS:arn:aws:iam::<account>:(another principal)"`` for a principal of a named
    account that is not itself named. ``change`` is "allowed" (head allows, base denied)
    or "denied" (the reverse). ``context`` is the witness request's condition context:
    (key, value) with None for a key the request does not carry. ``conditions`` is the
    canonical JSON of the Condition of the Allow statement that grants the access (in the
    head for "allowed", the base for "denied"), "" when it has none.
    """

    principal: str
    actions: frozenset[str]
    change: Literal["allowed", "denied"]
    context: tuple[tuple[str, str | None], ...]
    conditions: str
    resource: str | None = None

    @property
    def witness(self) -> str:
        return witness_text(self)


def who(principal: str) -> str:
    """A principal for people: the ARN or service name, or a phrase for the representatives."""
    if principal == EVERYONE:
        return 'any principal ("*")'
    kind, _, value = principal.partition(":")
    if value.endswith(_OTHER_SUFFIX):
        account = value.split(":")[4]
        return f"any principal of account {account} that neither policy names"
    return value if kind in ("AWS", "Service") else principal


def _actions_text(actions: frozenset[str]) -> str:
    if len(actions) == len(ALL_ACTIONS) and set(actions) == set(ALL_ACTIONS):
        return "kms:* (every action)"
    return ", ".join(sorted(actions))


def witness_text(diff: Difference) -> str:
    parts = [
        k if k.startswith("(") else f"{k} = {v}" if v is not None else f"{k} is absent"
        for k, v in diff.context
    ]
    if diff.resource:
        parts.append(f"the resource is {diff.resource}")
    when = f" when {' and '.join(parts)}" if parts else " (any request)"
    actions = _actions_text(diff.actions)
    if diff.change == "allowed":
        return f"newly allowed: {who(diff.principal)} may call {actions}{when}"
    return f"newly denied: {who(diff.principal)} may no longer call {actions}{when}"


# --------------------------------------------------------------------------- statements


def _texts(value: Any) -> list[str]:
    items = value if isinstance(value, (list, tuple)) else [value]
    return [v if isinstance(v, str) else json.dumps(v) for v in items]


@lru_cache(maxsize=2048)
def _glob_re(pattern: str, flags: int = re.IGNORECASE) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body, flags | re.DOTALL)


@lru_cache(maxsize=4096)
def _actions_of(patterns: tuple[str, ...]) -> frozenset[str]:
    return frozenset(a for a in ALL_ACTIONS for p in patterns if _glob_re(p).fullmatch(a))


def _account_of(principal: str) -> str | None:
    if not principal.startswith("AWS:"):
        return None
    match = _ARN_ACCOUNT.fullmatch(principal[4:])
    return match.group(2) if match else None


def _identity(principal: str) -> tuple[str, str] | None:
    """(account, role name) of a role or assumed-role principal."""
    match = _ARN_ACCOUNT.fullmatch(principal[4:]) if principal.startswith("AWS:") else None
    if not match:
        return None
    rest = match.group(3)
    role = _ROLE.fullmatch(rest) or _ASSUMED_ROLE.fullmatch(rest)
    return (match.group(2), role.group(1)) if role else None


def _is_root(principal: str) -> bool:
    return principal.startswith("AWS:arn:") and principal.endswith(":root")


def _principal_entries(value: Any, partition: str) -> list[str]:
    if value == "*":
        return [EVERYONE]
    if not isinstance(value, Mapping):
        return []
    out = []
    for ptype, ids in value.items():
        for v in _texts(ids):
            if ptype == "AWS" and v == "*":
                out.append(EVERYONE)
            elif ptype == "AWS" and _ACCOUNT_ID.fullmatch(v):
                out.append(f"AWS:arn:{partition}:iam::{v}:root")
            else:
                out.append(f"{ptype}:{v}")
    return out


def _covers(entry: str, principal: str, *, deny: bool) -> bool:
    """Whether a Principal entry names ``principal`` (a candidate of ``_candidates``)."""
    if entry in (EVERYONE, principal):
        return True
    if principal == EVERYONE:
        return False
    ident = _identity(entry)
    if ident is not None and ident == _identity(principal):
        return True
    if _is_root(entry) and deny:
        # A Deny naming the account applies to every principal of the account.
        return _account_of(entry) == _account_of(principal)
    return False


@dataclass(frozen=True)
class _Statement:
    index: int
    effect: str
    entries: tuple[str, ...]
    negated_principal: bool
    actions: frozenset[str]
    resources: tuple[str, ...] | None  # None: "*" (any resource)
    negated_resource: bool
    condition: Mapping[str, Mapping[str, tuple[str, ...]]]
    condition_json: str
    variables: bool  # Version 2012-10-17: ${*} ${?} ${$} in condition values are * ? $

    @property
    def unconditional(self) -> bool:
        return not self.condition and self.resources is None

    def applies_to(self, principal: str) -> bool:
        deny = self.effect == "Deny"
        account_wide = deny and not self.negated_principal
        covered = any(_covers(e, principal, deny=account_wide) for e in self.entries)
        return not covered if self.negated_principal else covered


def _statement(
    index: int, raw: Mapping[str, Any], partition: str, variables: bool = True
) -> _Statement | None:
    effect = raw.get("Effect")
    if effect not in ("Allow", "Deny"):
        return None
    if "Principal" in raw:
        entries, negated = _principal_entries(raw["Principal"], partition), False
    elif "NotPrincipal" in raw:
        entries, negated = _principal_entries(raw["NotPrincipal"], partition), True
    else:
        return None
    if "Action" in raw:
        actions = _actions_of(tuple(_texts(raw["Action"])))
    elif "NotAction" in raw:
        actions = frozenset(ALL_ACTIONS) - _actions_of(tuple(_texts(raw["NotAction"])))
    else:
        return None
    negated_resource = "NotResource" in raw
    patterns = _texts(raw.get("NotResource" if negated_resource else "Resource", "*"))
    resources: tuple[str, ...] | None = tuple(sorted(set(patterns)))
    if not negated_resource and "*" in patterns:
        resources = None
    condition: dict[str, dict[str, tuple[str, ...]]] = {}
    raw_condition = raw.get("Condition") or {}
    if not isinstance(raw_condition, Mapping):
        return None
    for operator, block in raw_condition.items():
        if not isinstance(block, Mapping):
            return None  # malformed: KMS would refuse it; it matches nothing here
        keys = condition.setdefault(str(operator), {})
        for key, values in block.items():
            merged = set(keys.get(str(key).lower(), ())) | set(_texts(values))
            keys[str(key).lower()] = tuple(sorted(merged))
        if not keys:
            del condition[str(operator)]
    return _Statement(
        index=index,
        effect=effect,
        entries=tuple(entries),
        negated_principal=negated,
        actions=actions,
        resources=resources,
        negated_resource=negated_resource,
        condition=condition,
        condition_json=json.dumps(condition, sort_keys=True, separators=(",", ":"))
        if condition
        else "",
        variables=variables,
    )


def _statements(doc: Mapping[str, Any] | None, partition: str) -> list[_Statement]:
    if doc is None:
        return []
    raw = doc.get("Statement", [])
    items = raw if isinstance(raw, (list, tuple)) else [raw]
    # Policy variables (and so the escapes) exist only in Version 2012-10-17 (IAM User
    # Guide, "IAM JSON policy elements: Version").
    variables = doc.get("Version") == "2012-10-17"
    out = []
    for index, item in enumerate(items):
        if isinstance(item, Mapping):
            parsed = _statement(index, item, partition, variables)
            if parsed is not None:
                out.append(parsed)
    return out


def _candidates(statements: Iterable[_Statement], partition: str) -> list[str]:
    """The principals to ask about: everyone named, a stand-in for the unnamed principals
    of each named account, and ``"*"`` for the principals nobody names."""
    named: set[str] = set()
    for s in statements:
        named.update(e for e in s.entries if e != EVERYONE)
    accounts = {a for p in named if (a := _account_of(p)) is not None}
    others = {f"AWS:arn:{partition}:iam::{a}{_OTHER_SUFFIX}" for a in accounts}
    return [*sorted(named | others), EVERYONE]


def _bindings(principal: str) -> dict[str, str]:
    """Values of the principal-bound keys for a candidate ({} when not fixed)."""
    if principal == EVERYONE:
        return {}
    kind, _, value = principal.partition(":")
    if kind == "Service":
        return {"aws:principalisawsservice": "true", "aws:principalservicename": value}
    account = _account_of(principal)
    if account is None:
        return {}
    out = {
        "aws:principalaccount": account,
        "kms:calleraccount": account,
        "aws:principalisawsservice": "false",
    }
    if value.endswith(_OTHER_SUFFIX):
        return out
    ident = _identity(principal)
    if ident is not None:
        partition = value.split(":")[1]
        out["aws:principalarn"] = f"arn:{partition}:iam::{ident[0]}:role/{ident[1]}"
        out["aws:principaltype"] = "AssumedRole"
    elif _is_root(principal):
        out["aws:principalarn"] = value
        out["aws:principaltype"] = "Account"
    else:
        out["aws:principalarn"] = value
        out["aws:principaltype"] = "User"
    return out


# --------------------------------------------------------------------------- z3 encoding

_S = z3.StringSort()
_ANY_CHAR = z3.AllChar(z3.ReSort(_S))
_ANY = z3.Star(_ANY_CHAR)
_NOT_COLON = z3.Intersect(_ANY_CHAR, z3.Complement(z3.Re(":")))


def _literal(text: str, ignore_case: bool = False) -> z3.ReRef:
    if not ignore_case:
        return z3.Re(z3.StringVal(text))
    parts = [
        z3.Union(z3.Re(c.lower()), z3.Re(c.upper())) if c.lower() != c.upper() else z3.Re(c)
        for c in text
    ]
    if not parts:
        return z3.Re(z3.StringVal(""))
    return parts[0] if len(parts) == 1 else z3.Concat(*parts)


_ESCAPES: Final = re.compile(r"\$\{([*?$])\}")


def _unescape(text: str) -> str:
    """``${*}``, ``${?}``, ``${$}``: the characters themselves (IAM User Guide, "IAM policy
    elements: Variables and tags", special characters)."""
    return _ESCAPES.sub(lambda m: m.group(1), text)


def _glob(
    pattern: str, star: z3.ReRef = _ANY, one: z3.ReRef = _ANY_CHAR, escapes: bool = False
) -> z3.ReRef:
    parts: list[z3.ReRef] = []
    chunk = ""
    pieces = _ESCAPES.split(pattern) if escapes else [pattern]
    for i, piece in enumerate(pieces):
        if i % 2:  # an escaped character: itself, never a wildcard
            chunk += piece
            continue
        for c in piece:
            if c in "*?":
                if chunk:
                    parts.append(_literal(chunk))
                    chunk = ""
                parts.append(star if c == "*" else one)
            else:
                chunk += c
    if chunk or not parts:
        parts.append(_literal(chunk))
    return parts[0] if len(parts) == 1 else z3.Concat(*parts)


def _arn_re(pattern: str, escapes: bool = False) -> z3.ReRef:
    segments = pattern.split(":", 5)
    if len(segments) != 6:
        # not an ARN: only equal text matches
        return _literal(_unescape(pattern) if escapes else pattern)
    parts: list[z3.ReRef] = []
    for i, seg in enumerate(segments):
        if i:
            parts.append(z3.Re(":"))
        if i < 5:
            parts.append(_glob(seg, z3.Star(_NOT_COLON), _NOT_COLON, escapes))
        else:
            parts.append(_glob(seg, escapes=escapes))
    return z3.Concat(*parts)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value and abs(value) != float("inf") else None


def _date(text: str) -> float | None:
    if re.fullmatch(r"-?\d+(\.\d+)?", text):
        return float(text)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def _cidr(text: str) -> tuple[int, int] | None:
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None
    base = 0 if net.version == 4 else _V6_BASE
    return base + int(net.network_address), base + int(net.broadcast_address)


def _ip_text(value: int) -> str:
    if value < _V6_BASE:
        return str(ipaddress.IPv4Address(value))
    return str(ipaddress.IPv6Address(value - _V6_BASE))


@dataclass
class _Element:
    present: z3.BoolRef
    text: z3.SeqRef
    number: z3.ArithRef
    date: z3.ArithRef
    ip: z3.ArithRef


class _Context:
    """The request's condition context as solver variables: each key has one element
    (single-valued) or ``size`` elements (multi-valued); a key that cannot be in the
    request has elements that are never present."""

    def __init__(self, sizes: Mapping[str, int]) -> None:
        self.sizes = sizes
        self.elements: dict[str, list[_Element]] = {}

    def of(self, key: str) -> list[_Element]:
        if key not in self.elements:
            n = self.sizes.get(key, 1)
            self.elements[key] = [
                _Element(
                    z3.Bool(f"has|{key}|{i}"),
                    z3.String(f"str|{key}|{i}"),
                    z3.Real(f"num|{key}|{i}"),
                    z3.Real(f"date|{key}|{i}"),
                    z3.Int(f"ip|{key}|{i}"),
                )
                for i in range(n)
            ]
        return self.elements[key]

    def domain(self) -> list[z3.BoolRef]:
        out: list[z3.BoolRef] = []
        for key, elements in self.elements.items():
            for e in elements:
                out.append(z3.And(e.ip >= 0, e.ip < _V6_BASE + 2**128))
                if key in _BOOLEAN_KEYS:
                    out.append(z3.InRe(e.text, z3.Union(_literal("true"), _literal("false"))))
            if len(elements) > 1:  # a set: no element twice, present ones first
                out += [
                    z3.Implies(elements[i + 1].present, elements[i].present)
                    for i in range(len(elements) - 1)
                ]
                out += [
                    z3.Implies(
                        z3.And(elements[i].present, elements[j].present),
                        elements[i].text != elements[j].text,
                    )
                    for i in range(len(elements))
                    for j in range(i + 1, len(elements))
                ]
        return out


def _key_possible(key: str, action: str) -> bool:
    if not catalog.known_condition_key(key):
        return False
    name = action.removeprefix("kms:")
    if key in _ACTION_KEYS:
        return name in _ACTION_KEYS[key]
    for prefix, actions in _ACTION_KEY_PREFIXES.items():
        if key.startswith(prefix):
            return name in actions
    return True


def _match(kind: str, e: _Element, values: Sequence[str], escapes: bool = False) -> z3.BoolRef:
    """The positive form of an operator on one element: any of ``values`` matches."""
    options: list[z3.BoolRef] = []
    for v in values:
        if kind == "eq":
            options.append(z3.InRe(e.text, _literal(_unescape(v) if escapes else v)))
        elif kind == "ieq":
            text = _unescape(v) if escapes else v
            options.append(z3.InRe(e.text, _literal(text, ignore_case=True)))
        elif kind == "like":
            options.append(z3.InRe(e.text, _glob(v, escapes=escapes)))
        elif kind == "arn":
            options.append(z3.InRe(e.text, _arn_re(v, escapes)))
        elif kind == "bool":
            if v.lower() in ("true", "false"):
                options.append(z3.InRe(e.text, _literal(v.lower())))
        elif kind.startswith("num"):
            n = _number(v)
            if n is not None:
                options.append(_compare(kind[3:], e.number, n))
        elif kind.startswith("date"):
            d = _date(v)
            if d is not None:
                options.append(_compare(kind[4:], e.date, d))
        elif kind == "ip":
            bounds = _cidr(v)
            if bounds is not None:
                options.append(z3.And(e.ip >= bounds[0], e.ip <= bounds[1]))
    return z3.Or(*options) if options else z3.BoolVal(False)


def _compare(op: str, var: z3.ArithRef, value: float) -> z3.BoolRef:
    const = z3.RealVal(repr(value)) if value != int(value) else z3.RealVal(int(value))
    return {
        "=": var == const,
        "<": var < const,
        "<=": var <= const,
        ">": var > const,
        ">=": var >= const,
    }[op]


def _atom(
    ctx: _Context,
    operator: str,
    key: str,
    values: Sequence[str],
    action: str,
    escapes: bool = False,
) -> z3.BoolRef:
    """One (operator, key, values) of a Condition block, for a request for ``action``."""
    prefix, sep, rest = operator.partition(":")
    set_op = prefix if sep else ""
    op = rest if sep else operator
    if set_op not in ("", "ForAllValues", "ForAnyValue"):
        return z3.BoolVal(False)
    possible = _key_possible(key, action)
    elements = ctx.of(key)
    present = [e.present if possible else z3.BoolVal(False) for e in elements]
    key_present = z3.Or(*present)
    if op == "Null":
        if set_op:
            return z3.BoolVal(False)
        options = [
            z3.Not(key_present) if v.lower() == "true" else key_present
            for v in values
            if v.lower() in ("true", "false")
        ]
        return z3.Or(*options) if options else z3.BoolVal(False)
    if_exists = op.endswith("IfExists")
    op = op.removesuffix("IfExists")
    if op not in _STRING_OPS:
        return z3.BoolVal(False)
    kind, negated = _STRING_OPS[op]
    escapes = escapes and kind in ("eq", "ieq", "like", "arn") and op != "BinaryEquals"
    matches = [_match(kind, e, values, escapes) for e in elements]
    pairs = list(zip(present, matches, strict=True))
    if set_op == "ForAllValues":
        result = z3.And(*[z3.Implies(p, z3.Not(m) if negated else m) for p, m in pairs])
    elif set_op == "ForAnyValue":
        result = z3.Or(*[z3.And(p, z3.Not(m) if negated else m) for p, m in pairs])
    else:
        any_match = z3.Or(*[z3.And(p, m) for p, m in zip(present, matches, strict=True)])
        result = z3.Not(any_match) if negated else any_match
    if if_exists:
        result = z3.Or(z3.Not(key_present), result)
    return result


def _nnf(
    f: z3.BoolRef, positive: bool = True, memo: dict[tuple[int, bool], Any] | None = None
) -> Any:
    """``f`` (or its negation) in negation normal form, where a negated regular-expression
    membership becomes membership in the complement: z3's regex solver decides
    intersections and complements of regular expressions at once, but may give up on a
    negated membership."""
    memo = {} if memo is None else memo
    key = (f.get_id(), positive)
    if key in memo:
        return memo[key]
    kind = f.decl().kind() if z3.is_app(f) else None
    children = f.children() if z3.is_app(f) else []
    if kind == z3.Z3_OP_NOT:
        out = _nnf(children[0], not positive, memo)
    elif kind in (z3.Z3_OP_AND, z3.Z3_OP_OR):
        parts = [_nnf(c, positive, memo) for c in children]
        conjunction = (kind == z3.Z3_OP_AND) == positive
        out = z3.And(*parts) if conjunction else z3.Or(*parts)
    elif kind == z3.Z3_OP_IMPLIES:
        left, right = children
        if positive:
            out = z3.Or(_nnf(left, False, memo), _nnf(right, True, memo))
        else:
            out = z3.And(_nnf(left, True, memo), _nnf(right, False, memo))
    elif kind == z3.Z3_OP_SEQ_IN_RE and not positive:
        out = z3.InRe(children[0], z3.Complement(children[1]))
    elif z3.is_true(f) or z3.is_false(f):
        out = f if positive else z3.BoolVal(not z3.is_true(f))
    else:
        out = f if positive else z3.Not(f)
    memo[key] = out
    return out


def _condition_formula(ctx: _Context, s: _Statement, action: str) -> z3.BoolRef:
    atoms = [
        _atom(ctx, operator, key, values, action, s.variables)
        for operator, block in s.condition.items()
        for key, values in block.items()
    ]
    return z3.And(*atoms) if atoms else z3.BoolVal(True)


def _resource_formula(resource: z3.SeqRef, s: _Statement) -> z3.BoolRef:
    if s.resources is None:
        return z3.BoolVal(True)
    hit = z3.Or(*[z3.InRe(resource, _glob(p)) for p in s.resources])
    return z3.Not(hit) if s.negated_resource else hit


def _sizes(statements: Iterable[_Statement]) -> dict[str, int]:
    """Elements per multi-valued key: one per condition on it (enough for exactness)."""
    counts: dict[str, int] = {}
    for s in statements:
        for block in s.condition.values():
            for key in block:
                if key in catalog.MULTI_VALUED_CONDITION_KEYS:
                    counts[key] = counts.get(key, 0) + 1
    return {k: min(max(n, 1), 8) for k, n in counts.items()}


# --------------------------------------------------------------------------- comparing


@dataclass(frozen=True)
class _Group:
    """The statements of both policies that apply to some (principal, action) pairs."""

    base_allow: tuple[_Statement, ...]
    base_deny: tuple[_Statement, ...]
    head_allow: tuple[_Statement, ...]
    head_deny: tuple[_Statement, ...]


def _signature(statements: Sequence[_Statement], action: str) -> tuple[str, ...]:
    """What decides a request: the statements' conditions, as the action sees them."""
    out = []
    for s in statements:
        absent = sorted(
            key for block in s.condition.values() for key in block if not _key_possible(key, action)
        )
        out.append(
            f"{s.effect}|{s.condition_json}|{s.resources}|{s.negated_resource}|{absent}"
            f"|{s.variables}"
        )
    return tuple(sorted(out))


def _decided(allows: Sequence[_Statement], denies: Sequence[_Statement]) -> bool | None:
    """Allowed or not without the solver, when every statement that applies is unconditional."""
    if any(s.unconditional for s in denies):
        return False
    if denies:
        return None
    if not allows:
        return False
    if any(s.unconditional for s in allows):
        return True
    return None


def _resource_prefix(partition: str, account_id: str | None, region: str | None) -> str:
    if account_id and region:
        return f"arn:{partition}:kms:{region}:{account_id}:key/"
    return f"arn:{partition}:kms:"


def _value_text(model: z3.ModelRef, e: _Element) -> str:
    text = model.eval(e.text, model_completion=True)
    return str(text.as_string()) if z3.is_string_value(text) else str(text)


@dataclass
class _Asked:
    """The condition keys one group's formulas read, by kind of reading."""

    text: set[str]
    number: set[str]
    date: set[str]
    ip: set[str]


def _kinds(statements: Iterable[_Statement]) -> _Asked:
    asked = _Asked(set(), set(), set(), set())
    for s in statements:
        for operator, block in s.condition.items():
            op = operator.partition(":")[2] or operator
            op = op.removesuffix("IfExists")
            kind = _STRING_OPS.get(op, ("eq", False))[0]
            target = (
                asked.number
                if kind.startswith("num")
                else asked.date
                if kind.startswith("date")
                else asked.ip
                if kind == "ip"
                else asked.text
            )
            target.update(block)
    return asked


def _witness(
    model: z3.ModelRef,
    ctx: _Context,
    statements: Sequence[_Statement],
    bound: Mapping[str, str],
    action: str,
) -> tuple[tuple[str, str | None], ...]:
    asked = _kinds(statements)
    keys = {k for s in statements for block in s.condition.values() for k in block}
    out: list[tuple[str, str | None]] = []
    for key in sorted(keys - set(bound)):
        elements = ctx.elements.get(key, [])
        present = [e for e in elements if z3.is_true(model.eval(e.present, model_completion=True))]
        if not _key_possible(key, action):
            continue  # never in such a request: nothing to show
        if not present:
            out.append((key, None))
            continue
        shown = []
        for e in present:
            if key in asked.number:
                shown.append(_arith_text(model.eval(e.number, model_completion=True)))
            elif key in asked.date:
                seconds = _arith_float(model.eval(e.date, model_completion=True))
                try:
                    shown.append(datetime.fromtimestamp(seconds, timezone.utc).isoformat())
                except (OverflowError, OSError, ValueError):
                    shown.append(f"{seconds:.0f} (epoch seconds)")
            elif key in asked.ip:
                shown.append(_ip_text(model.eval(e.ip, model_completion=True).as_long()))
            else:
                shown.append(_value_text(model, e))
        multi = key in catalog.MULTI_VALUED_CONDITION_KEYS
        out.append((key, "[" + ", ".join(shown) + "]" if multi else shown[0]))
    return tuple(out)


def _arith_float(value: z3.ExprRef) -> float:
    if z3.is_rational_value(value):
        return float(value.numerator_as_long()) / float(value.denominator_as_long())
    if z3.is_algebraic_value(value):
        return float(value.approx(10).as_decimal(10).rstrip("?"))
    return 0.0


def _arith_text(value: z3.ExprRef) -> str:
    number = _arith_float(value)
    return str(int(number)) if number == int(number) else repr(number)


@dataclass(frozen=True)
class _Found:
    change: Literal["allowed", "denied"]
    context: tuple[tuple[str, str | None], ...]
    conditions: str
    resource: str | None


def _solve_group(
    group: _Group,
    principal: str,
    action: str,
    prefix: str,
    others: Sequence[tuple[str, str]] = (),
) -> list[_Found]:
    with _SOLVER_LOCK:
        return _solve_group_locked(group, principal, action, prefix, others)


def _solve_group_locked(
    group: _Group,
    principal: str,
    action: str,
    prefix: str,
    others: Sequence[tuple[str, str]] = (),
) -> list[_Found]:
    """``others``: (key, value) of the named principals' identities (aws:PrincipalArn,
    aws:PrincipalServiceName), which an unnamed principal (``"*"``, another principal of
    an account) does not have."""
    everything = (*group.base_allow, *group.base_deny, *group.head_allow, *group.head_deny)
    ctx = _Context(_sizes(everything))
    resource = z3.String("resource")

    def matches(s: _Statement) -> z3.BoolRef:
        return z3.And(_condition_formula(ctx, s, action), _resource_formula(resource, s))

    base_allow = [matches(s) for s in group.base_allow]
    head_allow = [matches(s) for s in group.head_allow]
    base = z3.And(z3.Or(*base_allow), z3.Not(z3.Or(*[matches(s) for s in group.base_deny])))
    head = z3.And(z3.Or(*head_allow), z3.Not(z3.Or(*[matches(s) for s in group.head_deny])))
    solver = z3.Solver()
    solver.set("timeout", _TIMEOUT_MS)
    solver.add(z3.PrefixOf(z3.StringVal(prefix), resource))
    bound = _bindings(principal)
    for key, value in bound.items():
        if key in ctx.elements:
            element = ctx.of(key)[0]
            solver.add(element.present, element.text == z3.StringVal(value))
    for key, value in others:
        if key in ctx.elements:
            element = ctx.of(key)[0]
            solver.add(z3.Implies(element.present, element.text != z3.StringVal(value)))
    solver.add(*ctx.domain())
    found: list[_Found] = []
    resource_matters = any(s.resources is not None for s in everything)
    for change, query, allows, statements in (
        ("allowed", z3.And(head, z3.Not(base)), head_allow, group.head_allow),
        ("denied", z3.And(base, z3.Not(head)), base_allow, group.base_allow),
    ):
        solver.push()
        solver.add(_nnf(query))
        verdict = solver.check()
        if verdict == z3.sat:
            model = solver.model()
            granting = next(
                (
                    s
                    for s, f in zip(statements, allows, strict=True)
                    if z3.is_true(model.eval(f, model_completion=True))
                ),
                statements[0],
            )
            context = _witness(model, ctx, everything, bound, action)
            shown = None
            if resource_matters:
                shown = str(model.eval(resource, model_completion=True).as_string())
            found.append(_Found(change, context, granting.condition_json, shown))  # type: ignore[arg-type]
        elif verdict == z3.unknown:
            # The solver gave up: say so rather than claim no change.
            gave_up = ((_UNDECIDED, None),)
            conditions = statements[0].condition_json if statements else ""
            found.append(_Found(change, gave_up, conditions, None))  # type: ignore[arg-type]
        solver.pop()
    return found


def _key_names(*docs: Mapping[str, Any] | None) -> dict[str, str]:
    """Condition keys as the policies spell them (the first spelling seen), by lower case."""
    names: dict[str, str] = {}
    for doc in docs:
        raw = doc.get("Statement", []) if doc else []
        for s in raw if isinstance(raw, list) else [raw]:
            condition = s.get("Condition") if isinstance(s, Mapping) else None
            if not isinstance(condition, Mapping):
                continue
            for block in condition.values():
                if isinstance(block, Mapping):
                    for key in block:
                        names.setdefault(str(key).lower(), str(key))
    return names


def compare(
    base: Mapping[str, Any] | None,
    head: Mapping[str, Any] | None,
    *,
    partition: str = "aws",
    account_id: str | None = None,
    region: str | None = None,
    canonical: Callable[[Mapping[str, Any]], str] | None = None,
) -> tuple[Difference, ...]:
    """Every difference in what the two key policies allow, per principal and action.

    ``None`` is no policy (nothing allowed). Sorted by principal, change, actions. Empty
    exactly when the policies allow the same requests (as far as this model goes, see the
    module docstring). ``account_id`` and ``region`` pin the key's ARN (the resource).
    ``canonical``: a policy's canonical JSON in ``partition`` (a plan's memo, ``Canonicals.json``);
    by default ``canonical_json``.
    """
    from reconciler.policy import canonical_json

    def text(doc: Mapping[str, Any] | None) -> str:
        if doc is None:
            return ""
        return canonical(doc) if canonical else canonical_json(doc, partition=partition)

    base_text, head_text = text(base), text(head)
    if base_text == head_text:
        return ()
    found = _compare_texts(base_text, head_text, partition, account_id, region)
    names = _key_names(base, head)
    return tuple(
        replace(d, context=tuple((names.get(k, k), v) for k, v in d.context)) for d in found
    )


@lru_cache(maxsize=1024)
def _compare_texts(
    base_text: str, head_text: str, partition: str, account_id: str | None, region: str | None
) -> tuple[Difference, ...]:
    base = json.loads(base_text) if base_text else None
    head = json.loads(head_text) if head_text else None
    olds = _statements(base, partition)
    news = _statements(head, partition)
    if _same_statements(olds, news):
        return ()
    prefix = _resource_prefix(partition, account_id, region)
    merged: dict[tuple[str, str, Witness, str, str | None], set[str]] = {}
    memo: dict[tuple[Any, ...], list[_Found]] = {}
    everything = [*olds, *news]
    # Actions that see the same condition keys as possible share every verdict.
    keys = {k for s in everything for block in s.condition.values() for k in block}
    profile = {a: frozenset(k for k in keys if not _key_possible(k, a)) for a in ALL_ACTIONS}
    candidates = _candidates(everything, partition)
    identities = tuple(
        sorted(
            (key, value)
            for p in candidates
            for key, value in _bindings(p).items()
            if key in _IDENTITY_KEYS
        )
    )
    for principal in candidates:
        bound = _bindings(principal)
        unnamed = principal == EVERYONE or principal.endswith(_OTHER_SUFFIX)
        applies = [s for s in everything if s.applies_to(principal)]
        # The actions by the statements (of those that apply) that cover them.
        by_statements: dict[tuple[int, frozenset[str]], list[str]] = {}
        for action in ALL_ACTIONS:
            mask = sum(1 << i for i, s in enumerate(applies) if action in s.actions)
            by_statements.setdefault((mask, profile[action]), []).append(action)
        olds_set = {id(s) for s in olds}
        for (mask, _), actions in by_statements.items():
            if not mask:
                continue
            chosen = [s for i, s in enumerate(applies) if mask >> i & 1]
            old = [s for s in chosen if id(s) in olds_set]
            new = [s for s in chosen if id(s) not in olds_set]
            group = _Group(
                tuple(s for s in old if s.effect == "Allow"),
                tuple(s for s in old if s.effect == "Deny"),
                tuple(s for s in new if s.effect == "Allow"),
                tuple(s for s in new if s.effect == "Deny"),
            )
            others = identities if unnamed else ()
            for f in _group_result(group, principal, actions[0], bound, prefix, memo, others):
                key = (principal, f.change, f.context, f.conditions, f.resource)
                merged.setdefault(key, set()).update(actions)
    # What "*" (any principal) gains or loses, a named principal gains or loses in the same
    # request too: it is not listed apart.
    for (p, change, context, conditions, resource), named in list(merged.items()):
        if p == EVERYONE:
            continue
        everyone = merged.get((EVERYONE, change, context, conditions, resource), set())
        if named <= everyone:
            del merged[(p, change, context, conditions, resource)]
    diffs = [
        Difference(p, frozenset(actions), change, context, conditions, resource)  # type: ignore[arg-type]
        for (p, change, context, conditions, resource), actions in merged.items()
    ]
    return tuple(sorted(diffs, key=lambda d: (d.principal, d.change, sorted(d.actions), d.context)))


def _same_statements(olds: Sequence[_Statement], news: Sequence[_Statement]) -> bool:
    def shape(s: _Statement) -> tuple[Any, ...]:
        return (
            s.effect,
            s.entries,
            s.negated_principal,
            s.actions,
            s.resources,
            s.negated_resource,
            s.condition_json,
            s.variables,
        )

    return sorted(map(shape, olds), key=repr) == sorted(map(shape, news), key=repr)


def _group_result(
    group: _Group,
    principal: str,
    action: str,
    bound: Mapping[str, str],
    prefix: str,
    memo: dict[tuple[Any, ...], list[_Found]],
    others: Sequence[tuple[str, str]] = (),
) -> list[_Found]:
    base_sig = (_signature(group.base_allow, action), _signature(group.base_deny, action))
    head_sig = (_signature(group.head_allow, action), _signature(group.head_deny, action))
    if base_sig == head_sig:
        return []
    old = _decided(group.base_allow, group.base_deny)
    new = _decided(group.head_allow, group.head_deny)
    if old is not None and new is not None:
        if old == new:
            return []
        allows = group.head_allow if new else group.base_allow
        granting = next(s for s in allows if s.unconditional)
        return [_Found("allowed" if new else "denied", (), granting.condition_json, None)]
    reads_principal = any(
        key in _PRINCIPAL_KEYS
        for s in (*group.base_allow, *group.base_deny, *group.head_allow, *group.head_deny)
        for block in s.condition.values()
        for key in block
    )
    memo_key = (
        base_sig,
        head_sig,
        tuple(sorted(bound.items())) if reads_principal else (),
        tuple(others) if reads_principal else (),
    )
    if memo_key not in memo:
        memo[memo_key] = _solve_group(group, principal, action, prefix, others)
    return memo[memo_key]


def equivalent(
    base: Mapping[str, Any] | None, head: Mapping[str, Any] | None, *, partition: str = "aws"
) -> bool:
    """True when the two policies allow exactly the same requests."""
    return not compare(base, head, partition=partition)
