"""Helpers shared by the end-to-end tests: the standard keys, plan-text parsing, KMS reads
and a cosmetic policy rewrite."""

from __future__ import annotations

import json
import re
from typing import Any

import boto3
from botocore.config import Config

ACCOUNT = "123456789012"  # moto's default account: GetCallerIdentity returns it
REGION = "us-east-1"
IDENTITY_TAG = "kms-reconciler:name"

# The standard test inventory: two keys, so that a test can check that a change to one
# does not show up on the other. alpha has a templated policy, beta the default policy.
ALPHA: dict[str, Any] = {
    "name": "alpha",
    "description": "Alpha data key",
    "aliases": ["alias/alpha"],
    "tags": {"Owner": "team-a"},
    "policy": {
        "template": "application.json.j2",
        "vars": {"admin_roles": ["AdminRole"], "user_roles": ["AppRole"]},
    },
}
BETA: dict[str, Any] = {
    "name": "beta",
    "description": "Beta data key",
    "aliases": ["alias/beta"],
    "tags": {"Owner": "team-b"},
}

NO_CHANGES = "No changes. The keys match the inventory."


def _today() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).strftime("%Y-%m-%d")


# The usage line a plan shows under an entry that retires or restricts a key made today and
# never used (the conftest puts moto's tracking start long before today).
NEW_KEY_UNUSED = f"# usage: no use recorded since its creation on {_today()}"

_KEY_HEAD = re.compile(r'^  ([+~\- ]) key "([^"]+)"(?: \(([^)]+)\))? (.*?)(?:  # .*)?$')
_OPERATION = re.compile(r"^\s+\d+\. (\w+)\s+(\S+): (.*)$")


def listed_keys(plan_text: str) -> dict[str, str]:
    """The keys the text plan lists with a change, as {name: header without its source}.

    For example ``{"alpha": '~ key "alpha" (1234abcd-...) will be updated in place'}``.
    """
    out = {}
    for line in plan_text.splitlines():
        match = _KEY_HEAD.match(line)
        if match:
            out[match.group(2)] = line.split("  # ", 1)[0].strip()
    return out


def operations(plan_text: str) -> list[tuple[str, str, str]]:
    """The plan's "Operations, in order" as (operation, key, summary) tuples."""
    lines = plan_text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if "Operations, in order" in line)
    except StopIteration:
        return []
    out = []
    for line in lines[start + 1 :]:
        match = _OPERATION.match(line)
        if not match:
            break
        out.append((match.group(1), match.group(2), match.group(3)))
    return out


def field_lines(plan_text: str, key: str) -> list[str]:
    """The change lines under one key's header, with runs of blanks collapsed to one.

    ``      ~ description   = "a" -> "b"`` becomes ``~ description = "a" -> "b"``, so tests
    do not depend on the column alignment (which follows the longest field name).
    """
    lines = plan_text.splitlines()
    out: list[str] = []
    inside = False
    for line in lines:
        match = _KEY_HEAD.match(line)
        if match:
            inside = match.group(2) == key
            continue
        if inside:
            if not line.strip():
                inside = False
                continue
            out.append(" ".join(line.split()))
    return out


# -- KMS reads (boto3, out of band) -------------------------------------------------------


def kms_client(url: str, region: str = REGION, retries: dict[str, Any] | None = None) -> Any:
    """A boto3 KMS client on the moto_server at ``url``, with the dummy credentials;
    ``retries`` is botocore's retries config (by default ``{"max_attempts": 1}``)."""
    return boto3.client(
        "kms",
        endpoint_url=url,
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries=retries or {"max_attempts": 1}),
    )


def tags_of(kms: Any, key_id: str) -> dict[str, str]:
    return {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=key_id)["Tags"]}


LOCK_ANCHOR_TAG = "kms-reconciler:lock-anchor"
TOOL_ALIASES = "alias/kms-reconciler/"  # the apply lock's own aliases


def key_ids(kms: Any) -> list[str]:
    """Every key of the account but the apply lock's anchor (a key every apply makes once
    per account and Region: the tool's own, never one of the inventory's)."""
    return [
        k["KeyId"]
        for k in kms.list_keys()["Keys"]
        if LOCK_ANCHOR_TAG not in tags_of(kms, k["KeyId"])
    ]


def managed_keys(kms: Any) -> dict[str, str]:
    """{identity tag value: key id} for every key that carries the identity tag."""
    out = {}
    for key in kms.list_keys()["Keys"]:
        name = tags_of(kms, key["KeyId"]).get(IDENTITY_TAG)
        if name is not None:
            assert name not in out, f"two keys carry {IDENTITY_TAG}={name}"
            out[name] = key["KeyId"]
    return out


def aliases(kms: Any) -> dict[str, str | None]:
    """{alias name: target key id}, without the predefined alias/aws/* ones and the apply
    lock's own."""
    return {
        a["AliasName"]: a.get("TargetKeyId")
        for a in kms.list_aliases()["Aliases"]
        if not a["AliasName"].startswith(("alias/aws/", TOOL_ALIASES))
    }


def policy_of(kms: Any, key_id: str) -> dict[str, Any]:
    return json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])


def kms_snapshot(kms: Any) -> dict[str, Any]:
    """Everything a test may want to prove unchanged: per key metadata, tags, policy, rotation."""
    keys = {}
    for key_id in key_ids(kms):
        meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
        rotation = kms.get_key_rotation_status(KeyId=key_id)
        keys[key_id] = {
            "state": meta["KeyState"],
            "enabled": meta["Enabled"],
            "description": meta.get("Description"),
            "tags": tags_of(kms, key_id),
            "policy": policy_of(kms, key_id),
            "rotation": (rotation["KeyRotationEnabled"], rotation.get("RotationPeriodInDays")),
        }
    return {"keys": keys, "aliases": aliases(kms)}


# -- an out-of-band change (boto3) --------------------------------------------------------


def cosmetic_policy_rewrite(kms: Any, key_id: str) -> None:
    """Same statements in another form: order, scalar vs list, account ID, whitespace
    (test_drift and test_out_of_band: neither drift nor plan may see a change)."""
    policy = policy_of(kms, key_id)
    statements = []
    for statement in reversed(policy["Statement"]):
        statement = dict(reversed(list(statement.items())))  # other key order
        principal = statement["Principal"]["AWS"]
        if principal == f"arn:aws:iam::{ACCOUNT}:root":
            statement["Principal"] = {"AWS": ACCOUNT}  # account ID == its root ARN
        elif isinstance(principal, str):
            statement["Principal"] = {"AWS": [principal]}  # scalar == one-element list
        actions = statement["Action"]
        statement["Action"] = [actions] if isinstance(actions, str) else list(reversed(actions))
        statement["Resource"] = ["*"]
        statements.append(statement)
    rewritten = {"Statement": statements, "Id": policy["Id"], "Version": policy["Version"]}
    text = json.dumps(rewritten, indent=7, separators=(" ,", " :  "))
    kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=text)
    assert policy_of(kms, key_id) != policy  # really stored differently


# -- policies, compared by meaning (independently of reconciler.policy) -------------------


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _principal(value: Any) -> Any:
    if value == "*":
        return "*"
    out = {}
    for kind, ids in value.items():
        canon = []
        for item in _as_list(ids):
            if kind == "AWS" and re.fullmatch(r"\d{12}", item):
                item = f"arn:aws:iam::{item}:root"
            canon.append(item)
        out[kind] = sorted(set(canon))
    return out


def canonical_policy(policy: dict[str, Any]) -> list[str]:
    """Statements as a sorted list of canonical JSON strings (order and form ignored)."""
    statements = []
    for statement in _as_list(policy.get("Statement", [])):
        canon: dict[str, Any] = {}
        for name, value in statement.items():
            if name in ("Principal", "NotPrincipal"):
                canon[name] = _principal(value)
            elif name in ("Action", "NotAction", "Resource", "NotResource"):
                canon[name] = sorted(set(_as_list(value)))
            elif name == "Condition":
                canon[name] = {
                    op: {k: sorted(set(_as_list(v))) for k, v in body.items()}
                    for op, body in value.items()
                }
            else:
                canon[name] = value
        statements.append(json.dumps(canon, sort_keys=True))
    return sorted(statements)
