"""Pydantic models of the inventory YAML (DESIGN section 3): frozen, unknown fields refused.

Field validators carry the rules that one field can check alone (ranges, name and tag
syntax); a key's cross-field rules (key spec x usage, rotation on a key that cannot rotate)
live in its model validator. Rules that need the merged defaults are in ``desired``.
Error messages are short sentences: the loader prefixes them with file, line and field. A
model validator names the field it blames as the message's prefix (``key_usage: ...``), and
the loader moves that prefix into the field path.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    WithJsonSchema,
    model_validator,
)

from reconciler import catalog

_NAME_MAX = 128
# KMS's default quota of aliases per key ("Aliases per KMS key"); far more is a mistake, and
# a bound keeps checking a hostile list cheap.
ALIASES_PER_KEY_MAX = 50


def _between(low: int, high: int) -> Any:
    def check(value: int | None) -> int | None:
        if value is not None and not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}")
        return value

    return AfterValidator(check)


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


def _check_aliases(aliases: list[str]) -> None:
    if len(aliases) > ALIASES_PER_KEY_MAX:
        raise ValueError(
            f"aliases: lists {len(aliases)} aliases; KMS allows {ALIASES_PER_KEY_MAX} per key"
        )
    repeat = _first_repeat(aliases)
    if repeat:
        i, first = repeat
        raise ValueError(f"aliases[{i}]: {aliases[i]} is already listed as aliases[{first}]")


def _check_key_name(value: str) -> str:
    if len(value) > _NAME_MAX:
        raise ValueError(
            f"'{value[:40]}...' is {len(value)} characters long; names have at most {_NAME_MAX}"
        )
    if not catalog.KEY_NAME.match(value):
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
    if not catalog.ALIAS_CHARS.match(value):
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
    if not catalog.TAG_CHARS.match(key):
        raise ValueError(f"tag key '{key}' may contain only {_TAG_CHARS_TEXT}")
    return key


def check_tag_value(value: str) -> str:
    """One tag value, alone: at most 256 characters, legal characters."""
    if len(value) > catalog.TAG_VALUE_MAX:
        raise ValueError(
            f"the value is {len(value)} characters long; KMS allows at most {catalog.TAG_VALUE_MAX}"
        )
    if not catalog.TAG_CHARS.match(value):
        raise ValueError(f"the value '{value}' may contain only {_TAG_CHARS_TEXT}")
    return value


def check_tag_count(tags: dict[str, str]) -> dict[str, str]:
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


def _check_account_id(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        if len(str(value)) == 12:
            raise ValueError(f'must be quoted ("{value}"): account IDs are strings, not numbers')
        raise ValueError(
            f"must be quoted: YAML reads the unquoted account ID as the number {value} "
            "(leading zeros are dropped, or make it octal)"
        )
    if not isinstance(value, str) or not re.fullmatch(r"\d{12}", value):
        raise ValueError(f"{value!r} is not a 12-digit AWS account ID")
    return value


# The JSON Schema (``kms-reconciler schema``) carries what the validators check, for
# editors; the validators stay the authority and give the one-line messages.
KeyName = Annotated[
    str,
    AfterValidator(_check_key_name),
    WithJsonSchema({"type": "string", "pattern": catalog.KEY_NAME.pattern, "maxLength": 128}),
]
Alias = Annotated[
    str,
    AfterValidator(check_alias),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^alias/(?![aA][wW][sS]/)(?!kms-reconciler/)[a-zA-Z0-9/_-]+$",
            "maxLength": catalog.ALIAS_MAX,
        }
    ),
]


def _one_of(values: tuple[str, ...]) -> WithJsonSchema:
    return WithJsonSchema({"anyOf": [{"enum": list(values)}, {"type": "null"}], "default": None})


TagKey = Annotated[str, AfterValidator(check_tag_key)]
TagValue = Annotated[str, BeforeValidator(_tag_value_is_string), AfterValidator(check_tag_value)]
Tags = Annotated[dict[TagKey, TagValue], AfterValidator(check_tag_count)]
Days = Annotated[int | None, BeforeValidator(_strict_int)]
Flag = Annotated[bool | None, BeforeValidator(_strict_bool)]
# YAML 1.1 reads yes/no/on/off as booleans, pydantic's lax mode reads "yes" and 1 as true:
# a flag takes only true or false, so `bypass_policy_lockout_safety_check: "yes"` is refused.
StrictFlag = Annotated[bool, BeforeValidator(_strict_bool)]
AccountId = Annotated[str, BeforeValidator(_check_account_id)]


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


def _check_org(value: str) -> str:
    if not re.fullmatch(r"o-[a-z0-9]{10,32}", value):
        raise ValueError(f"'{value}' is not an AWS Organizations ID (like o-a1b2c3d4e5)")
    return value


class Waiver(Model):
    """An accepted review finding: which rule, why, who owns it, until when."""

    rule: Annotated[str, AfterValidator(lambda v: _check_rule_id(v))]
    reason: Annotated[str, AfterValidator(lambda v: _non_empty(v, "reason"))]
    owner: Annotated[str, AfterValidator(lambda v: _non_empty(v, "owner"))]
    expires: date


def _check_rule_id(value: str) -> str:
    if not re.fullmatch(r"KMS\d{3}", value):
        raise ValueError(f"'{value}' is not a review rule ID (like KMS001)")
    return value


def _non_empty(value: str, what: str) -> str:
    if not value.strip():
        raise ValueError(f"a waiver needs a {what}")
    return value


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


def _check_grant_name(value: str) -> str:
    if not catalog.GRANT_NAME.match(value):
        raise ValueError(
            f"'{value}' is not a valid grant name: use letters, digits and : / _ - "
            "(1-256 characters)"
        )
    return value


def _check_operation(value: str) -> str:
    if value not in catalog.GRANT_OPERATIONS:
        raise ValueError(
            f"'{value}' is not a KMS grant operation (one of {', '.join(catalog.GRANT_OPERATIONS)})"
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
EncryptionContext = Annotated[dict[str, str], AfterValidator(_check_context)]


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

    name: Annotated[str, AfterValidator(_check_grant_name)]
    grantee_principal: Principal
    operations: Annotated[
        list[Annotated[str, AfterValidator(_check_operation)]], AfterValidator(_check_operations)
    ]
    retiring_principal: Principal | None = None
    constraints: GrantConstraints | None = None


EXPIRATION_MODELS = ("KEY_MATERIAL_DOES_NOT_EXPIRE", "KEY_MATERIAL_EXPIRES")


class KeyMaterialSpec(Model):
    """Where an EXTERNAL key's material is read at apply time: a file or an env variable.

    Only the reference lives in the inventory, never the material itself.
    """

    file: str | None = None
    env: str | None = None
    expiration_model: str = "KEY_MATERIAL_DOES_NOT_EXPIRE"
    valid_to: datetime | date | None = None

    @model_validator(mode="after")
    def _check(self) -> KeyMaterialSpec:
        given = [name for name in ("file", "env") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of 'file' or 'env'"
                + (f" (found {', '.join(given)})" if given else "")
            )
        if self.file is not None and (
            self.file.startswith(("/", "\\")) or ".." in self.file.replace("\\", "/").split("/")
        ):
            raise ValueError(
                f"file: '{self.file}' must be a path inside the inventory (relative, no '..')"
            )
        if self.env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.env):
            raise ValueError(f"env: '{self.env}' is not an environment variable name")
        if self.expiration_model not in EXPIRATION_MODELS:
            raise ValueError(
                f"expiration_model: '{self.expiration_model}' is not one of "
                f"{', '.join(EXPIRATION_MODELS)}"
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
        return f"file {self.file}" if self.file is not None else f"env {self.env}"


def _replica_tag_value(value: Any) -> Any:
    """A replica's tag value: a string as for any tag, or null (leave the key's tag off)."""
    return None if value is None else _tag_value_is_string(value)


class ReplicaSpec(Model):
    """One replica of a multi-Region key: `keys[i].replicas[j]`.

    KMS does not share a replica's description, tags, policy, aliases or enabled state with
    its primary, so each may be set per replica. Left out, each is the key's own (the
    policy rendered again with the replica's `region`; tags merge key by key).
    """

    region: Annotated[str, AfterValidator(lambda v: _check_region(v))]
    description: str | None = None
    enabled: Flag = None
    # Merged over the key's tags; `Name: null` leaves one of the key's tags off this replica.
    tags: dict[
        TagKey,
        Annotated[
            str | None,
            BeforeValidator(_replica_tag_value),
            AfterValidator(lambda v: None if v is None else check_tag_value(v)),
        ],
    ] = {}
    policy: PolicySource | None = None
    aliases: list[Alias] | None = None

    @model_validator(mode="after")
    def _check(self) -> ReplicaSpec:
        if self.description is not None and len(self.description) > catalog.DESCRIPTION_MAX:
            raise ValueError(f"description: is longer than {catalog.DESCRIPTION_MAX} characters")
        _check_aliases(self.aliases or [])
        return self


class KeySpec(Model):
    """One logical key: `keys[i]` of a key file."""

    name: KeyName
    targets: list[str] | None = None
    description: str | None = None
    key_spec: Annotated[str | None, _one_of(catalog.KEY_SPECS)] = None
    key_usage: Annotated[str | None, _one_of(catalog.KEY_USAGES)] = None
    origin: Annotated[str | None, _one_of(catalog.ORIGINS)] = None
    key_material: KeyMaterialSpec | None = None
    multi_region: Flag = None
    # Multi-Region keys: the replicas in other Regions, and the Region of the primary key
    # (default: the target's own Region).
    replicas: list[ReplicaSpec] = []
    primary_region: Annotated[
        str | None, AfterValidator(lambda v: None if v is None else _check_region(v))
    ] = None
    enabled: Flag = None
    aliases: list[Alias] = []
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

    @model_validator(mode="after")
    def _cross_field(self) -> KeySpec:
        if self.description is not None and len(self.description) > catalog.DESCRIPTION_MAX:
            raise ValueError(f"description: is longer than {catalog.DESCRIPTION_MAX} characters")
        if self.key_spec is not None and self.key_spec not in catalog.KEY_SPEC_USAGES:
            raise ValueError(
                f"key_spec: '{self.key_spec}' is not a KMS key spec "
                f"(one of {', '.join(catalog.KEY_SPECS)})"
            )
        if self.key_usage is not None and self.key_usage not in catalog.KEY_USAGES:
            raise ValueError(
                f"key_usage: '{self.key_usage}' is not a KMS key usage "
                f"(one of {', '.join(catalog.KEY_USAGES)})"
            )
        if self.origin is not None and self.origin not in catalog.ORIGINS:
            raise ValueError(
                f"origin: '{self.origin}' is not supported (one of {', '.join(catalog.ORIGINS)})"
            )
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
        if self.key_material is not None and origin != catalog.ORIGIN_EXTERNAL:
            raise ValueError(
                f"key_material: only keys with origin EXTERNAL take imported key material "
                f"(this key's origin is {origin})"
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
        _check_aliases(self.aliases)
        self._check_replicas()
        self._check_grants(key_spec, self.key_usage or catalog.default_key_usage(key_spec))
        return self

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


class Target(Model):
    """One (account, region) the inventory reconciles."""

    name: KeyName
    account_id: AccountId
    region: Annotated[str, AfterValidator(lambda v: _check_region(v))]
    # Credentials: a profile (else the environment's), then a role to assume, or a chain
    # of roles assumed one after the other (the last is in the target account).
    profile: str | None = None
    role_arn: Annotated[str | list[str] | None, AfterValidator(lambda v: _check_role_arns(v))] = (
        None
    )
    # A read-only role (or chain) for the commands that only read: plan, drift, import and
    # review --live. The writers (apply, rotate, force-unlock) use role_arn. Without it,
    # every command uses role_arn.
    plan_role_arn: Annotated[
        str | list[str] | None, AfterValidator(lambda v: _check_role_arns(v))
    ] = None
    external_id: str | None = None
    session_name: Annotated[str | None, AfterValidator(lambda v: _check_session_name(v))] = None
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


def _check_role_arns(value: str | list[str] | None) -> str | list[str] | None:
    for arn in [value] if isinstance(value, str) else value or []:
        if not re.fullmatch(r"arn:aws[\w-]*:iam::\d{12}:role/[\w+=,.@/-]+", arn):
            raise ValueError(f"'{arn}' is not an IAM role ARN")
    return value


def _check_session_name(value: str | None) -> str | None:
    if value is not None and not re.fullmatch(r"[\w+=,.@-]{2,64}", value):
        raise ValueError(f"'{value}' is not a valid role session name (2-64 of \\w+=,.@-)")
    return value


def _check_region(value: str) -> str:
    if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", value):
        raise ValueError(f"'{value}' is not an AWS Region name (like us-east-1)")
    return value


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


class Settings(Model):
    """`inventory.yaml`."""

    identity_tag: Annotated[str, AfterValidator(lambda v: _check_identity_tag(v))] = (
        catalog.DEFAULT_IDENTITY_TAG
    )
    targets: list[Target]
    defaults: KeyDefaults = KeyDefaults()
    ignore: list[IgnoreRule] = []
    admin_principals: list[str] = []
    # Accounts (besides the targets') and AWS Organizations whose principals the review
    # treats as inside: granting them decrypt or permission management is not "outside".
    trusted_accounts: list[AccountId] = []
    organization_ids: list[Annotated[str, AfterValidator(lambda v: _check_org(v))]] = []
    request_quotas: dict[str, Annotated[float, BeforeValidator(_strict_number)]] = {}

    @model_validator(mode="after")
    def _targets(self) -> Settings:
        if not self.targets:
            raise ValueError("targets: declare at least one target")
        names = [t.name for t in self.targets]
        repeat = _first_repeat(names)
        if repeat:
            i, first = repeat
            name = names[i]
            raise ValueError(
                f"targets[{i}].name: the target name '{name}' is already used by targets[{first}]"
            )
        unknown = sorted(set(self.request_quotas) - set(catalog.REQUEST_QUOTAS))
        if unknown:
            raise ValueError(f"request_quotas: unknown KMS operation {', '.join(unknown)}")
        return self


def _check_identity_tag(value: str) -> str:
    return check_tag_key(value)


class KeyFile(Model):
    """A key file: a top-level `keys:` list."""

    keys: list[KeySpec]
