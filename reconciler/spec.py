"""Pydantic models of the inventory YAML (DESIGN section 3): frozen, unknown fields refused.

Field rules (``_Rule``) carry what one value can check alone: closed sets (key specs,
usages, origins, grant operations), ranges (deletion window, rotation period), syntax (names,
aliases, tag keys and values, Regions, account IDs), lengths, counts and repeats. Each rule
is made once from the ``catalog`` constants and gives both the one-line message and the JSON
Schema keywords (``enum``, ``minimum``, ``pattern``...) that ``kms-reconciler schema`` writes,
so the schema and the loader cannot drift apart.

What stays in model validators, because JSON Schema says it only awkwardly or not at all:
the key spec x key usage table, a required key usage for specs with several, rotation and
key material only for the key types that have them, replicas only on multi-Region keys and
one per Region, grant names and contents unique within a key and grant operations against
the key type, "exactly one of" (policy sources, key material sources, grant constraints,
ignore matchers), valid_to with the expiration model, unique target names, and principals
(placeholders filled in per target, service principals refused). Rules that need the
merged defaults are in ``desired``; rules across files in ``loader``.
Error messages are short sentences: the loader prefixes them with file, line and field. A
model validator names the field it blames as the message's prefix (``key_usage: ...``), and
the loader moves that prefix into the field path; a list's rule names the item it blames
the same way (``[3]: ...``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    WithJsonSchema,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from reconciler import catalog

_NAME_MAX = 128
# KMS's default quota of aliases per key ("Aliases per KMS key"); far more is a mistake, and
# a bound keeps checking a hostile list cheap.
ALIASES_PER_KEY_MAX = 50


@dataclass(frozen=True, eq=False)  # hashed by identity: keywords is a dict
class _Rule:
    """A rule on one value: ``check`` gives the one-line message (or is None when the value's
    parts carry the check, as tag keys do for a tag mapping), ``keywords`` say the same to
    JSON Schema. Both are made from the same constants.

    The keywords go on the value's schema; for an optional value (``X | None``) on the X
    branch, so that null stays allowed.
    """

    check: Callable[[Any], Any] | None
    keywords: Mapping[str, Any]

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        inner = handler(source)
        if self.check is None:
            return inner
        return core_schema.no_info_after_validator_function(self.check, inner)

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        document = handler(schema)
        branches = [b for b in document.get("anyOf", []) if b != {"type": "null"}]
        target = branches[0] if len(branches) == 1 else document
        target.update(self.keywords)
        return document


def _anchored(regex: re.Pattern[str]) -> str:
    """A pattern for JSON Schema, which searches: anchored at both ends."""
    pattern = regex.pattern
    return pattern if pattern.startswith("^") else f"^(?:{pattern})$"


def _any_case(text: str) -> str:
    """A pattern for ``text`` in any case (JSON Schema patterns have no flags)."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in text)


def _between(low: int, high: int) -> _Rule:
    def check(value: int | None) -> int | None:
        if value is not None and not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}")
        return value

    return _Rule(check, {"minimum": low, "maximum": high})


def _one_of(values: tuple[str, ...], message: str) -> _Rule:
    """A closed set of strings; ``message`` formats ``{value}`` and ``{values}``."""

    def check(value: str | None) -> str | None:
        if value is not None and value not in values:
            raise ValueError(message.format(value=value, values=", ".join(values)))
        return value

    return _Rule(check, {"enum": list(values)})


def _matching(regex: re.Pattern[str], message: str) -> _Rule:
    """The whole string matches ``regex``; ``message`` formats ``{value}``."""

    def check(value: str | None) -> str | None:
        if value is not None and not regex.fullmatch(value):
            raise ValueError(message.format(value=value))
        return value

    return _Rule(check, {"pattern": _anchored(regex)})


def _longest(limit: int) -> _Rule:
    def check(value: str | None) -> str | None:
        if value is not None and len(value) > limit:
            raise ValueError(f"is longer than {limit} characters")
        return value

    return _Rule(check, {"maxLength": limit})


def _yaml_text(value: Any) -> str:
    """A value as YAML would show it (true, not True), for messages."""
    return str(value).lower() if isinstance(value, bool) else repr(value)


def _strict_int(value: Any) -> Any:
    if isinstance(value, bool) or (value is not None and not isinstance(value, int)):
        raise ValueError(f"must be a whole number, not {_yaml_text(value)}")
    return value


def _strict_bool(value: Any) -> Any:
    if value is not None and not isinstance(value, bool):
        raise ValueError(f"must be true or false, not {_yaml_text(value)}")
    return value


def _strict_number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"must be a number, not {_yaml_text(value)}")
    return value


def _first_repeat(values: list[Any]) -> tuple[int, int] | None:
    """(index of the first value listed before, index of its first listing), in linear time."""
    first: dict[Any, int] = {}
    for i, value in enumerate(values):
        j = first.setdefault(value, i)
        if j != i:
            return i, j
    return None


def _check_aliases(aliases: list[str] | None) -> list[str] | None:
    if aliases is None:
        return None
    if len(aliases) > ALIASES_PER_KEY_MAX:
        raise ValueError(f"lists {len(aliases)} aliases; KMS allows {ALIASES_PER_KEY_MAX} per key")
    repeat = _first_repeat(aliases)
    if repeat:
        i, first = repeat
        raise ValueError(f"[{i}]: {aliases[i]} is already listed as aliases[{first}]")
    return aliases


def _check_key_name(value: str) -> str:
    if len(value) > _NAME_MAX:
        raise ValueError(
            f"'{value[:40]}...' is {len(value)} characters long; names have at most {_NAME_MAX}"
        )
    if not catalog.KEY_NAME.fullmatch(value):
        raise ValueError(
            f"'{value}' is not a valid name: use lower-case letters, digits and '-' "
            "(1-128 characters, starting and ending with a letter or digit)"
        )
    return value


def check_alias(value: str) -> str:
    if not value.startswith(catalog.ALIAS_PREFIX):
        raise ValueError(f"'{value}' must start with 'alias/'")
    if value.lower().startswith(catalog.ALIAS_RESERVED_PREFIX):
        raise ValueError(f"'{value}' uses the prefix 'alias/aws/', which AWS reserves")
    if value.startswith(catalog.TOOL_ALIAS_PREFIX):
        raise ValueError(
            f"'{value}' uses the prefix '{catalog.TOOL_ALIAS_PREFIX}', which kms-reconciler "
            "keeps for its apply lock"
        )
    if len(value) > catalog.ALIAS_MAX:
        raise ValueError(f"'{value[:40]}...' is longer than {catalog.ALIAS_MAX} characters")
    if not catalog.ALIAS_CHARS.fullmatch(value):
        raise ValueError(
            f"'{value}' may contain only letters, digits, '/', '_' and '-' after 'alias/'"
        )
    return value


_TAG_CHARS_TEXT = "letters, digits, spaces and + - = . _ : / @"


def check_tag_key(key: str) -> str:
    """One tag key, alone: not empty, not `aws:`, at most 128 characters, legal characters."""
    if not key:
        raise ValueError("a tag key must not be empty")
    if key.lower().startswith("aws:"):
        raise ValueError(f"tag key '{key}' uses the prefix 'aws:', which AWS reserves")
    if len(key) > catalog.TAG_KEY_MAX:
        raise ValueError(
            f"tag key '{key[:40]}...' is {len(key)} characters long; "
            f"KMS allows at most {catalog.TAG_KEY_MAX}"
        )
    if not catalog.TAG_CHARS.fullmatch(key):
        raise ValueError(f"tag key '{key}' may contain only {_TAG_CHARS_TEXT}")
    return key


def check_tag_value(value: str) -> str:
    """One tag value, alone: at most 256 characters, legal characters."""
    if len(value) > catalog.TAG_VALUE_MAX:
        raise ValueError(
            f"the value is {len(value)} characters long; KMS allows at most {catalog.TAG_VALUE_MAX}"
        )
    if not catalog.TAG_CHARS.fullmatch(value):
        raise ValueError(f"the value '{value}' may contain only {_TAG_CHARS_TEXT}")
    return value


def check_tag_count(tags: dict[str, Any]) -> dict[str, Any]:
    if len(tags) > catalog.TAGS_MAX:
        raise ValueError(f"has {len(tags)} tags; KMS allows at most {catalog.TAGS_MAX}")
    return tags


def check_tags(tags: dict[str, str]) -> dict[str, str]:
    """Every rule for a whole tag mapping; raises ValueError on the first problem."""
    check_tag_count(tags)
    for key, value in tags.items():
        check_tag_key(key)
        try:
            check_tag_value(value)
        except ValueError as exc:
            raise ValueError(f"tag '{key}': {exc}") from None
    return tags


def _tag_value_is_string(value: Any) -> Any:
    """YAML turns `Cost: 42` or `Public: no` into numbers and booleans; tags are strings."""
    if isinstance(value, bool):
        raise ValueError(
            f"YAML reads this unquoted value as the boolean {str(value).lower()}: quote it"
        )
    if isinstance(value, int | float):
        raise ValueError(f"YAML reads the unquoted value {value!r} as a number: quote it")
    if value is None:
        raise ValueError("has no value: write '' for an empty value")
    return value


_ACCOUNT_ID = re.compile(r"\d{12}")


def _check_account_id(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        if len(str(value)) == 12:
            raise ValueError(f'must be quoted ("{value}"): account IDs are strings, not numbers')
        raise ValueError(
            f"must be quoted: YAML reads the unquoted account ID as the number {value} "
            "(leading zeros are dropped, or make it octal)"
        )
    if not isinstance(value, str) or not _ACCOUNT_ID.fullmatch(value):
        raise ValueError(f"{value!r} is not a 12-digit AWS account ID")
    return value


def _after_prefix(prefix: str) -> str:
    """``prefix`` without the leading 'alias/'."""
    assert prefix.startswith(catalog.ALIAS_PREFIX)
    return prefix[len(catalog.ALIAS_PREFIX) :]


KeyName = Annotated[
    str, _Rule(_check_key_name, {"pattern": catalog.KEY_NAME.pattern, "maxLength": _NAME_MAX})
]
# check_alias in one pattern: the prefix, then neither reserved prefix, then the characters.
_ALIAS_PATTERN = (
    f"^{catalog.ALIAS_PREFIX}"
    f"(?!{_any_case(_after_prefix(catalog.ALIAS_RESERVED_PREFIX))})"
    f"(?!{_after_prefix(catalog.TOOL_ALIAS_PREFIX)})"
    f"{catalog.ALIAS_NAME_CHARS}$"
)
Alias = Annotated[
    str, _Rule(check_alias, {"pattern": _ALIAS_PATTERN, "maxLength": catalog.ALIAS_MAX})
]
Aliases = Annotated[
    list[Alias],
    _Rule(_check_aliases, {"maxItems": ALIASES_PER_KEY_MAX, "uniqueItems": True}),
]

# check_tag_key and check_tag_value in JSON Schema ("aws:" in any case is reserved).
TAG_KEY_SCHEMA: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": catalog.TAG_KEY_MAX,
    "pattern": f"^(?!{_any_case('aws:')}){catalog.TAG_CHARS.pattern.removeprefix('^')}",
}
_TAG_VALUE_KEYWORDS = {"maxLength": catalog.TAG_VALUE_MAX, "pattern": catalog.TAG_CHARS.pattern}
TagKey = Annotated[str, _Rule(check_tag_key, TAG_KEY_SCHEMA)]
# A mapping's keys: checked one by one, described by the mapping's propertyNames (pydantic
# would turn a key's pattern into patternProperties, which let other keys through).
_TagKeyName = Annotated[str, AfterValidator(check_tag_key)]
TagValue = Annotated[
    str, BeforeValidator(_tag_value_is_string), _Rule(check_tag_value, _TAG_VALUE_KEYWORDS)
]
Tags = Annotated[
    dict[_TagKeyName, TagValue],
    _Rule(check_tag_count, {"maxProperties": catalog.TAGS_MAX, "propertyNames": TAG_KEY_SCHEMA}),
]
Description = Annotated[str | None, _longest(catalog.DESCRIPTION_MAX)]
Days = Annotated[int | None, BeforeValidator(_strict_int)]
Flag = Annotated[bool | None, BeforeValidator(_strict_bool)]
# YAML 1.1 reads yes/no/on/off as booleans, pydantic's lax mode reads "yes" and 1 as true:
# a flag takes only true or false, so `bypass_policy_lockout_safety_check: "yes"` is refused.
StrictFlag = Annotated[bool, BeforeValidator(_strict_bool)]
AccountId = Annotated[
    str, BeforeValidator(_check_account_id), _Rule(None, {"pattern": _anchored(_ACCOUNT_ID)})
]


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Rotation(Model):
    enabled: Flag = None
    period_days: Annotated[
        Days, _between(catalog.ROTATION_PERIOD_MIN, catalog.ROTATION_PERIOD_MAX)
    ] = None


class PolicySource(Model):
    """Exactly one of: a template (with vars), an inline document, or a JSON file."""

    template: str | None = None
    vars: dict[str, Any] = {}
    document: dict[str, Any] | None = None
    file: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> PolicySource:
        given = [name for name in ("template", "document", "file") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of 'template', 'document' or 'file'"
                + (f" (found {', '.join(given)})" if given else "")
            )
        if self.vars and not self.template:
            raise ValueError("'vars' goes with 'template' only")
        return self


DeletionWindow = Annotated[Days, _between(catalog.DELETION_WINDOW_MIN, catalog.DELETION_WINDOW_MAX)]


class KeyDefaults(Model):
    """Values every key of a scope inherits unless it sets its own."""

    enabled: Flag = None
    rotation: Rotation | None = None
    deletion_window_days: DeletionWindow = None
    deletion_protection: Flag = None
    tags: Tags = {}
    policy: PolicySource | None = None


OrganizationId = Annotated[
    str,
    _matching(
        re.compile(r"o-[a-z0-9]{10,32}"),
        "'{value}' is not an AWS Organizations ID (like o-a1b2c3d4e5)",
    ),
]


def _non_empty(what: str) -> _Rule:
    def check(value: str) -> str:
        if not value.strip():
            raise ValueError(f"a waiver needs a {what}")
        return value

    return _Rule(check, {"pattern": r"\S"})


class Waiver(Model):
    """An accepted review finding: which rule, why, who owns it, until when."""

    rule: Annotated[
        str, _matching(re.compile(r"KMS\d{3}"), "'{value}' is not a review rule ID (like KMS001)")
    ]
    reason: Annotated[str, _non_empty("reason")]
    owner: Annotated[str, _non_empty("owner")]
    expires: date


# Placeholders a grant's principals may use, filled in per target (like the sample's
# service.json.j2 does for its vars): one inventory can grant to a role in each account.
GRANT_PLACEHOLDERS = {"{account_id}": "111122223333", "{partition}": "aws", "{region}": "us-east-1"}


def _check_principal(value: str) -> str:
    probe = value
    for placeholder, example in GRANT_PLACEHOLDERS.items():
        probe = probe.replace(placeholder, example)
    if catalog.SERVICE_PRINCIPAL.match(probe):
        raise ValueError(
            f"'{value}' is a service principal; declare grants to IAM principal ARNs (grants "
            "that AWS services make for their own resources are left to them)"
        )
    if not catalog.GRANT_PRINCIPAL.match(probe):
        raise ValueError(
            f"'{value}' is not an IAM principal ARN (like arn:aws:iam::111122223333:role/App; "
            "{account_id} and {partition} are filled in per target)"
        )
    return value


def _check_operations(value: list[str]) -> list[str]:
    if not value:
        raise ValueError("list at least one operation")
    counts: dict[str, int] = {}
    for op in value:
        counts[op] = counts.get(op, 0) + 1
    twice = sorted(op for op, n in counts.items() if n > 1)
    if twice:
        raise ValueError(f"lists {', '.join(twice)} more than once")
    return value


def _check_context(value: dict[str, str]) -> dict[str, str]:
    if not value:
        raise ValueError("give at least one encryption context pair")
    return value


Principal = Annotated[str, AfterValidator(_check_principal)]
EncryptionContext = Annotated[dict[str, str], _Rule(_check_context, {"minProperties": 1})]
GrantOperation = Annotated[
    str,
    _one_of(catalog.GRANT_OPERATIONS, "'{value}' is not a KMS grant operation (one of {values})"),
]


class GrantConstraints(Model):
    """An encryption context the request must equal, or include: one of the two."""

    encryption_context_equals: EncryptionContext | None = None
    encryption_context_subset: EncryptionContext | None = None

    @model_validator(mode="after")
    def _one(self) -> GrantConstraints:
        given = [self.encryption_context_equals, self.encryption_context_subset]
        if sum(v is not None for v in given) != 1:
            raise ValueError(
                "give exactly one of 'encryption_context_equals' or 'encryption_context_subset'"
            )
        return self


class GrantSpec(Model):
    """One declared grant: `keys[i].grants[j]`."""

    name: Annotated[
        str,
        _matching(
            catalog.GRANT_NAME,
            "'{value}' is not a valid grant name: use letters, digits and : / _ - "
            "(1-256 characters)",
        ),
    ]
    grantee_principal: Principal
    operations: Annotated[
        list[GrantOperation], _Rule(_check_operations, {"minItems": 1, "uniqueItems": True})
    ]
    retiring_principal: Principal | None = None
    constraints: GrantConstraints | None = None


EXPIRATION_MODELS = ("KEY_MATERIAL_DOES_NOT_EXPIRE", "KEY_MATERIAL_EXPIRES")
# Relative, and no '..' segment ('/' or '\\' separate segments).
_INSIDE_PATH = re.compile(r"(?![/\\])(?![\s\S]*(?:^|[/\\])\.\.(?:[/\\]|$))[\s\S]*")


class KeyMaterialSpec(Model):
    """Where an EXTERNAL key's material is read at apply time: a file or an env variable.

    Only the reference lives in the inventory, never the material itself.
    """

    file: Annotated[
        str | None,
        _matching(
            _INSIDE_PATH, "'{value}' must be a path inside the inventory (relative, no '..')"
        ),
    ] = None
    env: Annotated[
        str | None,
        _matching(
            re.compile(r"[A-Za-z_][A-Za-z0-9_]*"), "'{value}' is not an environment variable name"
        ),
    ] = None
    # How the bytes are stored: binary (a file's default), base64 (a variable's default,
    # standard alphabet) or hex. A private key may be DER or PEM either way.
    encoding: Annotated[
        str | None, _one_of(catalog.MATERIAL_ENCODINGS, "'{value}' is not one of {values}")
    ] = None
    expiration_model: Annotated[
        str, _one_of(EXPIRATION_MODELS, "'{value}' is not one of {values}")
    ] = "KEY_MATERIAL_DOES_NOT_EXPIRE"
    valid_to: datetime | date | None = None
    # true: the key's imported material is deleted (DeleteImportedKeyMaterial) and stays
    # deleted; the key waits in PendingImport. Alone: no file, env or expiry with it.
    deleted: StrictFlag = False
    # A label of this material, kept by KMS as its KeyMaterialDescription. Naming a new
    # version (with new material in file or env) rotates a symmetric key to it on demand:
    # ImportKeyMaterial (NEW_KEY_MATERIAL), then RotateKeyOnDemand.
    version: Annotated[
        str | None,
        _matching(
            re.compile(r"[A-Za-z0-9 ._:/=+@-]{1,256}"),
            "'{value}' is not a material version label (1-256 letters, digits, spaces and "
            "._:/=+@-)",
        ),
    ] = None

    @model_validator(mode="after")
    def _check(self) -> KeyMaterialSpec:
        if self.deleted:
            extra = [
                name
                for name in ("file", "env", "encoding", "valid_to", "version")
                if getattr(self, name) is not None
            ]
            if extra:
                raise ValueError(
                    f"deleted: true declares that the key has no material; leave out "
                    f"{', '.join(extra)}"
                )
            return self
        given = [name for name in ("file", "env") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of 'file' or 'env'"
                + (f" (found {', '.join(given)})" if given else "")
            )
        if self.env is not None and self.encoding == "binary":
            raise ValueError(
                "encoding: an environment variable cannot hold binary key material; store it "
                "as base64 (the default for env) or hex"
            )
        expires = self.expiration_model == "KEY_MATERIAL_EXPIRES"
        if expires and self.valid_to is None:
            raise ValueError("valid_to: is required when expiration_model is KEY_MATERIAL_EXPIRES")
        if not expires and self.valid_to is not None:
            raise ValueError(
                "valid_to: is allowed only with expiration_model: KEY_MATERIAL_EXPIRES"
            )
        return self

    @property
    def source(self) -> str:
        """The reference, as plans and messages show it: `file keys/app.bin` or `env APP_KEY`."""
        if self.deleted:
            return "none (deleted)"
        return f"file {self.file}" if self.file is not None else f"env {self.env}"


Region = Annotated[
    str,
    _matching(
        re.compile(r"[a-z]{2}(-[a-z]+)+-\d"), "'{value}' is not an AWS Region name (like us-east-1)"
    ),
]


def _replica_tag_value(value: Any) -> Any:
    """A replica's tag value: a string as for any tag, or null (leave the key's tag off)."""
    return None if value is None else _tag_value_is_string(value)


class ReplicaSpec(Model):
    """One replica of a multi-Region key: `keys[i].replicas[j]`.

    KMS does not share a replica's description, tags, policy, aliases or enabled state with
    its primary, so each may be set per replica. Left out, each is the key's own (the
    policy rendered again with the replica's `region`; tags merge key by key).
    """

    region: Region
    description: Description = None
    enabled: Flag = None
    # Merged over the key's tags; `Name: null` leaves one of the key's tags off this replica.
    tags: Annotated[
        dict[
            _TagKeyName,
            Annotated[
                str | None,
                BeforeValidator(_replica_tag_value),
                _Rule(lambda v: None if v is None else check_tag_value(v), _TAG_VALUE_KEYWORDS),
            ],
        ],
        _Rule(None, {"propertyNames": TAG_KEY_SCHEMA}),
    ] = {}
    policy: PolicySource | None = None
    aliases: Aliases | None = None


def _strict_date(value: Any) -> Any:
    """A calendar date: YAML's 2027-01-15 (read as a date) or the same text quoted; never a
    number (pydantic would take it for Unix time) or a time of day."""
    if value is None or (isinstance(value, date) and not isinstance(value, datetime)):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(f"must be a date as YYYY-MM-DD, not {_yaml_text(value)}")


class RetireSpec(Model):
    """Staged retirement: `keys[i].retire`. Exactly one of `disable_on` (a date) or
    `after_unused_days` (no recorded use for that many days) says when the key is disabled;
    after `observe_days` disabled with no recorded use, plans offer its deletion."""

    disable_on: Annotated[
        date | None,
        BeforeValidator(_strict_date),
        WithJsonSchema({"anyOf": [{"type": "string", "format": "date"}, {"type": "null"}]}),
    ] = None
    after_unused_days: Annotated[Days, _between(1, catalog.USAGE_DAYS_MAX)] = None
    observe_days: Annotated[
        Annotated[int, BeforeValidator(_strict_int)],
        _between(catalog.RETIRE_OBSERVE_DAYS_MIN, catalog.RETIRE_OBSERVE_DAYS_MAX),
    ] = catalog.RETIRE_OBSERVE_DAYS_DEFAULT

    @model_validator(mode="after")
    def _one_trigger(self) -> RetireSpec:
        given = [n for n in ("disable_on", "after_unused_days") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of 'disable_on' or 'after_unused_days'"
                + (f" (found {', '.join(given)})" if given else "")
            )
        return self


class KeySpec(Model):
    """One logical key: `keys[i]` of a key file."""

    name: KeyName
    targets: list[str] | None = None
    description: Description = None
    key_spec: Annotated[
        str | None,
        _one_of(catalog.KEY_SPECS, "'{value}' is not a KMS key spec (one of {values})"),
    ] = None
    key_usage: Annotated[
        str | None,
        _one_of(catalog.KEY_USAGES, "'{value}' is not a KMS key usage (one of {values})"),
    ] = None
    origin: Annotated[
        str | None, _one_of(catalog.ORIGINS, "'{value}' is not supported (one of {values})")
    ] = None
    key_material: KeyMaterialSpec | None = None
    # A key in a custom key store (origin AWS_CLOUDHSM or EXTERNAL_KEY_STORE): the store,
    # and for an external key store the external key's ID. Immutable, like origin; the
    # stores themselves are managed outside the inventory.
    custom_key_store_id: Annotated[
        str | None,
        _matching(
            catalog.CUSTOM_KEY_STORE_ID,
            "'{value}' is not a custom key store ID (cks- and letters or digits, such as "
            "cks-1234567890abcdef0)",
        ),
    ] = None
    xks_key_id: Annotated[
        str | None,
        _matching(
            catalog.XKS_KEY_ID,
            "'{value}' is not an external key ID (1-128 letters, digits, '.', '_', '-')",
        ),
    ] = None
    multi_region: Flag = None
    # Multi-Region keys: the replicas in other Regions, and the Region of the primary key
    # (default: the target's own Region).
    replicas: list[ReplicaSpec] = []
    primary_region: Region | None = None
    enabled: Flag = None
    aliases: Aliases = []
    rotation: Rotation | None = None
    deletion_window_days: DeletionWindow = None
    deletion_protection: Flag = None
    tags: Tags = {}
    policy: PolicySource | None = None
    adopt: str | None = None
    inherit_defaults: StrictFlag = True
    waivers: list[Waiver] = []
    allow_alias_takeover: StrictFlag = False
    bypass_policy_lockout_safety_check: StrictFlag = False
    grants: list[GrantSpec] = []
    grants_purge: StrictFlag = False
    retire: RetireSpec | None = None

    @model_validator(mode="after")
    def _cross_field(self) -> KeySpec:
        key_spec = self.key_spec or catalog.SYMMETRIC_DEFAULT
        allowed = catalog.KEY_SPEC_USAGES[key_spec]
        if self.key_usage is not None and self.key_usage not in allowed:
            raise ValueError(
                f"key_usage: {self.key_usage} is not allowed for key_spec {key_spec} "
                f"(allowed: {', '.join(allowed)})"
            )
        if self.key_usage is None and len(allowed) > 1:
            # KMS would pick ENCRYPT_DECRYPT for an RSA or SM2 key; a signing key created
            # that way cannot be fixed (key_usage is immutable), so such specs must say.
            raise ValueError(
                f"key_usage: is required for key_spec {key_spec} (one of {', '.join(allowed)}); "
                "it cannot be changed after the key is created"
            )
        origin = self.origin or catalog.ORIGIN_AWS_KMS
        self._check_key_store(key_spec, origin)
        if self.key_material is not None and origin != catalog.ORIGIN_EXTERNAL:
            raise ValueError(
                f"key_material: only keys with origin EXTERNAL take imported key material "
                f"(this key's origin is {origin})"
            )
        if origin == catalog.ORIGIN_EXTERNAL and key_spec not in catalog.IMPORTABLE_KEY_SPECS:
            raise ValueError(
                f"origin: key material for {key_spec} keys cannot be imported (origin EXTERNAL "
                f"takes {', '.join(catalog.IMPORTABLE_KEY_SPECS)})"
            )
        if (
            self.rotation is not None
            and self.rotation.enabled
            and not catalog.can_rotate_automatically(key_spec, origin)
        ):
            raise ValueError(
                "rotation.enabled: automatic rotation exists only for SYMMETRIC_DEFAULT keys with "
                f"origin AWS_KMS, not {key_spec}/{origin}"
            )
        if self.retire is not None and self.multi_region:
            raise ValueError(
                "retire: staged retirement is not supported on multi-Region keys; remove the "
                "spec and apply with --allow-destroy to delete the key and its replicas"
            )
        self._check_replicas()
        self._check_grants(key_spec, self.key_usage or catalog.default_key_usage(key_spec))
        return self

    def _check_key_store(self, key_spec: str, origin: str) -> None:
        """A custom key store's key: the store named, a symmetric encryption key in one
        Region, and an external key ID exactly when the store is an external one."""
        in_store = origin in catalog.CUSTOM_KEY_STORE_ORIGINS
        if in_store and self.custom_key_store_id is None:
            raise ValueError(
                f"custom_key_store_id: is required for origin {origin} (the ID of the "
                "custom key store that holds the key material)"
            )
        if not in_store and self.custom_key_store_id is not None:
            raise ValueError(
                f"origin: a key in a custom key store has origin AWS_CLOUDHSM (CloudHSM key "
                f"store) or EXTERNAL_KEY_STORE (external key store), not {origin}"
            )
        external = origin == catalog.ORIGIN_EXTERNAL_KEY_STORE
        if external and self.xks_key_id is None:
            raise ValueError(
                "xks_key_id: is required for origin EXTERNAL_KEY_STORE (the ID of the "
                "external key in the external key manager)"
            )
        if not external and self.xks_key_id is not None:
            raise ValueError("xks_key_id: only keys with origin EXTERNAL_KEY_STORE have one")
        if in_store and key_spec != catalog.SYMMETRIC_DEFAULT:
            raise ValueError(
                f"key_spec: keys in a custom key store are SYMMETRIC_DEFAULT only, not {key_spec}"
            )
        if in_store and self.multi_region:
            raise ValueError("multi_region: keys in a custom key store cannot be multi-Region")

    def _check_replicas(self) -> None:
        """Replicas and a primary Region only for multi-Region keys, one replica per Region."""
        if not self.multi_region:
            for name in ("replicas", "primary_region"):
                if getattr(self, name):
                    raise ValueError(
                        f"{name}: only multi-Region keys have replicas (set multi_region: true; "
                        "it cannot be changed after the key is created)"
                    )
            return
        regions = [r.region for r in self.replicas]
        repeat = _first_repeat(regions)
        if repeat:
            i, first = repeat
            region = regions[i]
            raise ValueError(
                f"replicas[{i}].region: {region} is already listed as replicas[{first}]; "
                "KMS allows one replica of a key per Region"
            )

    def _check_grants(self, key_spec: str, key_usage: str | None) -> None:
        """Grant names and contents unique; operations and constraints fit the key type."""
        names: dict[str, int] = {}
        contents: dict[tuple[Any, ...], int] = {}
        for i, grant in enumerate(self.grants):
            first = names.setdefault(grant.name, i)
            if first != i:
                raise ValueError(
                    f"grants[{i}].name: '{grant.name}' is already used by grants[{first}]"
                )
            constraints = grant.constraints
            content = (
                grant.grantee_principal,
                tuple(sorted(grant.operations)),
                grant.retiring_principal,
                None
                if constraints is None
                else tuple(
                    None if pairs is None else tuple(sorted(pairs.items()))
                    for pairs in (
                        constraints.encryption_context_equals,
                        constraints.encryption_context_subset,
                    )
                ),
            )
            same = contents.setdefault(content, i)
            if same != i:
                raise ValueError(
                    f"grants[{i}]: allows the same as grants[{same}] "
                    "(grantee, operations, retiring principal and constraints); grants are "
                    "matched by what they allow, so declare it once"
                )
            if key_usage is None:
                continue  # key_usage is required and reported above
            allowed = catalog.grant_operations(key_spec, key_usage)
            for j, operation in enumerate(grant.operations):
                if operation not in allowed:
                    raise ValueError(
                        f"grants[{i}].operations[{j}]: {operation} is not allowed on a "
                        f"{key_spec} {key_usage} key (allowed: {', '.join(allowed)})"
                    )
            if grant.constraints is not None:
                if key_spec != catalog.SYMMETRIC_DEFAULT:
                    raise ValueError(
                        f"grants[{i}].constraints: encryption context constraints apply only "
                        f"to symmetric encryption keys, not {key_spec}"
                    )
                if not set(grant.operations) & set(catalog.GRANT_SYMMETRIC_OPERATIONS):
                    raise ValueError(
                        f"grants[{i}].constraints: encryption context constraints apply only "
                        "to symmetric encryption operations "
                        f"({', '.join(catalog.GRANT_SYMMETRIC_OPERATIONS)}); the grant "
                        "allows none of them"
                    )


_ROLE_ARN = re.compile(r"arn:aws[\w-]*:iam::\d{12}:role/[\w+=,.@/-]+")


def _check_role_arns(value: str | list[str] | None) -> str | list[str] | None:
    for arn in [value] if isinstance(value, str) else value or []:
        if not _ROLE_ARN.fullmatch(arn):
            raise ValueError(f"'{arn}' is not an IAM role ARN")
    return value


# One role, or a chain. Checked as a whole (a check per union member would report a bad ARN
# twice), so the schema is written out here, from the same pattern.
_ROLE_ARN_SCHEMA = {"type": "string", "pattern": _anchored(_ROLE_ARN)}
RoleArns = Annotated[
    str | list[str] | None,
    AfterValidator(_check_role_arns),
    WithJsonSchema(
        {
            "anyOf": [
                _ROLE_ARN_SCHEMA,
                {"type": "array", "items": _ROLE_ARN_SCHEMA},
                {"type": "null"},
            ],
            "default": None,
        }
    ),
]


class Target(Model):
    """One (account, region) the inventory reconciles."""

    name: KeyName
    account_id: AccountId
    region: Region
    # Credentials: a profile (else the environment's), then a role to assume, or a chain
    # of roles assumed one after the other (the last is in the target account).
    profile: str | None = None
    role_arn: RoleArns = None
    # A read-only role (or chain) for the commands that only read: plan, drift, import and
    # review --live. The writers (apply, rotate, force-unlock) use role_arn. Without it,
    # every command uses role_arn.
    plan_role_arn: RoleArns = None
    external_id: str | None = None
    session_name: Annotated[
        str | None,
        _matching(
            re.compile(r"[\w+=,.@-]{2,64}"),
            "'{value}' is not a valid role session name (2-64 of \\w+=,.@-)",
        ),
    ] = None
    session_duration_seconds: Annotated[Days, _between(900, 43200)] = None
    vars: dict[str, Any] = {}
    defaults: KeyDefaults = KeyDefaults()

    @property
    def role_chain(self) -> tuple[str, ...]:
        return _chain(self.role_arn)

    @property
    def plan_role_chain(self) -> tuple[str, ...]:
        return _chain(self.plan_role_arn)


def _chain(value: str | list[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


class IgnoreRule(Model):
    """An unmanaged key that drift does not report: by key ID, alias glob, or tag."""

    key_id: str | None = None
    alias: str | None = None
    tag: dict[str, str] | None = None

    @model_validator(mode="after")
    def _one_matcher(self) -> IgnoreRule:
        if sum(x is not None for x in (self.key_id, self.alias, self.tag)) != 1:
            raise ValueError("give exactly one of 'key_id', 'alias' or 'tag'")
        return self


def _some_target(targets: list[Target]) -> list[Target]:
    if not targets:
        raise ValueError("declare at least one target")
    return targets


def _known_operations(quotas: dict[str, float]) -> dict[str, float]:
    unknown = sorted(set(quotas) - set(catalog.REQUEST_QUOTAS))
    if unknown:
        raise ValueError(f"unknown KMS operation {', '.join(unknown)}")
    return quotas


# The principals a deployer may be: IAM users and roles, STS assumed-role sessions.
DeployerArn = Annotated[
    str,
    _matching(
        catalog.GRANT_PRINCIPAL,
        "'{value}' is not an IAM principal ARN (like "
        "arn:aws:iam::111122223333:role/kms-reconciler)",
    ),
]
FAN_OUT_DEFAULT = 5


class ReviewSettings(Model):
    """`review:` in inventory.yaml: what the review rules need to know beyond the policies."""

    # The principals CI applies with: a change that takes kms:PutKeyPolicy away from one
    # is a lockout finding (KMS004), as the next apply could not put the policy.
    deployer_arns: list[DeployerArn] = []
    # From this many keys changed at once by one template, KMS108 is medium (from 2: low).
    fan_out_threshold: Annotated[Days, _between(2, 10000)] = FAN_OUT_DEFAULT
    # Opt-in: a key that bypasses the lockout safety check must carry a Deny of
    # kms:PutKeyPolicy under kms:BypassPolicyLockoutSafetyCheck (KMS018).
    require_deny_on_bypass: StrictFlag = False


class Settings(Model):
    """`inventory.yaml`."""

    identity_tag: TagKey = catalog.DEFAULT_IDENTITY_TAG
    targets: Annotated[list[Target], _Rule(_some_target, {"minItems": 1})]
    defaults: KeyDefaults = KeyDefaults()
    ignore: list[IgnoreRule] = []
    admin_principals: list[str] = []
    # Accounts (besides the targets') and AWS Organizations whose principals the review
    # treats as inside: granting them decrypt or permission management is not "outside".
    trusted_accounts: list[AccountId] = []
    organization_ids: list[OrganizationId] = []
    # Key usage (GetKeyLastUsage): apply refuses to disable or schedule deletion of a key
    # used within retire_guard_days (unless --allow-in-use); drift reports a key with no
    # use recorded for unused_after_days (unused-key).
    retire_guard_days: Annotated[
        Annotated[int, BeforeValidator(_strict_int)], _between(0, catalog.USAGE_DAYS_MAX)
    ] = catalog.RETIRE_GUARD_DAYS
    unused_after_days: Annotated[
        Annotated[int, BeforeValidator(_strict_int)], _between(1, catalog.USAGE_DAYS_MAX)
    ] = catalog.UNUSED_AFTER_DAYS
    review: ReviewSettings = ReviewSettings()
    request_quotas: Annotated[
        dict[str, Annotated[float, BeforeValidator(_strict_number)]],
        _Rule(_known_operations, {"propertyNames": {"enum": list(catalog.REQUEST_QUOTAS)}}),
    ] = {}
    # How plan, apply and drift find the keys the tool owns: a ListResourceTags per customer
    # key, or the Resource Groups Tagging API first (tag:GetResources; README "Discovery").
    discovery: Annotated[
        str,
        _one_of(catalog.DISCOVERY_MODES, "'{value}' is not a discovery mode (one of {values})"),
    ] = catalog.DISCOVERY_LIST_TAGS

    @model_validator(mode="after")
    def _targets(self) -> Settings:
        names = [t.name for t in self.targets]
        repeat = _first_repeat(names)
        if repeat:
            i, first = repeat
            name = names[i]
            raise ValueError(
                f"targets[{i}].name: the target name '{name}' is already used by targets[{first}]"
            )
        return self


class KeyFile(Model):
    """A key file: a top-level `keys:` list."""

    keys: list[KeySpec]
