"""Bad-input corpus (issue 13): hostile or mistaken inventories, each through the real CLI.

Every case starts from a small valid inventory, changes one thing, and runs
``validate`` (in-process with click's CliRunner; a sample also as a real subprocess, and
``plan`` against a local recording HTTP server). Each must:

- exit 1 with at least one line on stderr, every line starting ``error: ``;
- name the file that is wrong (and the field, where the inventory has one);
- print no traceback, and never the content of a file outside the inventory;
- make no request of any kind to AWS (``plan``: the recording server counts them);
- finish in under 5 seconds.

Expected file and field come from the rules (which file and field is wrong), not from the
tool's output.
"""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
from click.testing import CliRunner

from reconciler.cli import main

MARKER = "S3CRET-MARKER-7f3a9c"  # the content of every file outside the inventory
LIMIT_SECONDS = 5.0

F = "keyspecs/app.yaml"
INV = "keyspecs/inventory.yaml"
T = "keyspecs/policies/p.json.j2"

INVENTORY = """\
targets:
  - name: prod
    account_id: "111122223333"
    region: us-east-1
"""

TEMPLATE = """\
{
  "Version": "2012-10-17",
  "Statement": [
    {"Sid": "Root", "Effect": "Allow",
     "Principal": {"AWS": "arn:{{ partition }}:iam::{{ account_id }}:root"},
     "Action": "kms:*", "Resource": "*"}
  ]
}
"""

KEY = """\
keys:
  - name: app
    aliases: [alias/app]
    policy:
      template: p.json.j2
"""


@dataclass(frozen=True)
class Link:
    """A symbolic link; ``{outside}`` in the target is the folder outside the inventory."""

    target: str


@dataclass(frozen=True)
class Case:
    id: str
    kind: str
    files: dict[str, str | bytes | Link | None]  # relative to keyspecs/; None: a folder
    file: str  # the file the error must name
    field: str | None = None  # and the field, where there is one
    plan: bool = False  # also run `plan` against the recording server (as a subprocess)


def key(*lines: str, name: str = "app") -> str:
    """The base key with extra lines (indented 4 spaces, as fields of the key)."""
    return KEY.replace("app", name, 1) + "".join(f"    {line}\n" for line in lines)


def key_without_policy(*lines: str) -> str:
    return "keys:\n  - name: app\n" + "".join(f"    {line}\n" for line in lines)


def tpl(body: str) -> dict[str, str | bytes | Link | None]:
    return {"policies/p.json.j2": body + "\n"}


def policy_with(
    statement_extra: str = "", principal: str = '{"AWS": "arn:aws:iam::111122223333:root"}'
) -> str:
    return (
        '{"Version": "2012-10-17", "Statement": [{"Sid": "S", "Effect": "Allow", '
        f'"Principal": {principal}, "Action": "kms:*", "Resource": "*"{statement_extra}}}]}}'
    )


CASES: list[Case] = []


def add(
    kind: str,
    id: str,
    files: dict[str, str | bytes | Link | None],
    file: str,
    field: str | None = None,
    plan: bool = False,
) -> None:
    CASES.append(Case(f"{kind}-{id}", kind, files, file, field, plan))


# -- YAML syntax -----------------------------------------------------------------------------

for i, text in enumerate(
    [
        "keys:\n  - name: app\n    tags: {a: b\n",
        "keys:\n  - name: app\n    aliases: [alias/x\n",
        "keys:\n  - name: app\n   description: bad indent\n",
        "keys:\n\t- name: app\n",
        "keys:\n  - name: 'app\n",
        'keys:\n  - name: "app\n',
        "keys:\n  - name: app\n    tags: {a: b}}\n",
        "keys:\n  - name: app\n  - : x\n    - y\n",
        "keys:\n  - name: app\n---\nkeys: []\n",
        "keys:\n  - name: *nowhere\n",
        "keys:\n  - name: app\n    description: @reserved\n",
        "keys:\n  - name: app\n    description: `backtick\n",
        "keys: [\n",
        "keys:\n  - name: app\n    tags: {[a, b]: c}\n",
        "keys:\n  - name: app\n    ? [a, b]\n    : c\n",
        "keys:\n  - name: app\n    tags:\n      ? {x: 1}\n      : c\n",
        "keys:\n  - name: app\n    name: twice\n",
        "keys:\n  - name: app\n    tags: {A: b, A: c}\n",
        "keys:\n  - name: app\nkeys: []\n",
        "",
        "# only a comment\n",
        "keys: !!python/object/apply:os.system ['true']\n",
        "keys:\n  - name: !!binary '@@@'\n",
        "keys:\n  - name: app\n    description: |\n  wrong\n",
        "%YAML 9.9\n---\nkeys: []\n",
    ]
):
    add("yaml-syntax", f"{i:02d}", {"app.yaml": text}, F)

for code in [0, 1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 14, 15, 16, 20, 27, 31, 127]:
    text = f"keys:\n  - name: app{chr(code)}\n"
    add("yaml-control-char", f"x{code:02x}", {"app.yaml": text}, F)
add("yaml-control-char", "nul-in-inventory", {"inventory.yaml": INVENTORY + "# \x00\n"}, INV)

# -- YAML bombs and bounds ------------------------------------------------------------------


def laughs(width: int, depth: int) -> str:
    lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    for d in range(1, depth):
        lines.append(f"a{d}: &a{d} [{', '.join([f'*a{d - 1}'] * width)}]")
    return "\n".join(lines) + f"\nkeys: *a{depth - 1}\n"


for width, depth in [(9, 9), (10, 10), (2, 40), (100, 4), (1000, 2), (3, 30)]:
    add(
        "yaml-bomb",
        f"laughs-{width}x{depth}",
        {"app.yaml": laughs(width, depth)},
        F,
        plan=width == 9,
    )
add("yaml-bomb", "self-alias", {"app.yaml": "keys: &a [*a]\n"}, F)
add("yaml-bomb", "self-alias-map", {"app.yaml": "keys:\n  - &k {name: app, x: *k}\n"}, F)
add(
    "yaml-bomb",
    "merge-laughs",
    {"app.yaml": laughs(6, 10).replace("keys:", "x:") + "keys: []\n"},
    F,
)
for depth in [101, 500, 900, 1000, 5000]:
    add(
        "yaml-bomb",
        f"deep-flow-{depth}",
        {"app.yaml": "keys: " + "[" * depth + "]" * depth + "\n"},
        F,
        plan=depth == 1000,
    )
add(
    "yaml-bomb",
    "deep-block-150",
    {
        "app.yaml": "keys:\n"
        + "".join("  " * d + "- \n" for d in range(1, 150))
        + "  " * 150
        + "- x\n"
    },
    F,
)
add("yaml-bomb", "deep-maps-300", {"app.yaml": "keys: " + "{a: " * 300 + "1" + "}" * 300 + "\n"}, F)
add("yaml-bomb", "many-values", {"app.yaml": "keys: [" + "a," * 60_000 + "]\n"}, F)
add("yaml-bomb", "huge-file", {"app.yaml": "keys: []\n" + "#" * (5 * 1024 * 1024) + "\n"}, F)
add("yaml-bomb", "huge-int", {"app.yaml": key("deletion_window_days: " + "9" * 5000)}, F)
add(
    "yaml-bomb",
    "many-aliases-200k",
    {
        "app.yaml": "keys:\n  - name: app\n    aliases: ["
        + ",".join(f"alias/a{i}" for i in range(200_000))
        + "]\n"
    },
    F,
)
add(
    "yaml-bomb",
    "aliases-10k",
    {
        "app.yaml": "keys:\n  - name: app\n    aliases: ["
        + ",".join(f"alias/a{i}" for i in range(10_000))
        + "]\n"
    },
    F,
    "keys[0].aliases",
    plan=True,
)
add(
    "yaml-bomb",
    "inventory-laughs",
    {"inventory.yaml": laughs(10, 8).replace("keys:", "targets:")},
    INV,
)

# -- wrong types ------------------------------------------------------------------------------

WRONG_TYPES: list[tuple[str, str, str]] = [
    ("name-number", "keys:\n  - name: 123\n", "keys[0].name"),
    ("name-list", "keys:\n  - name: [a]\n", "keys[0].name"),
    ("name-map", "keys:\n  - name: {a: b}\n", "keys[0].name"),
    ("name-null", "keys:\n  - name:\n", "keys[0].name"),
    ("keys-map", "keys: {name: app}\n", "keys"),
    ("keys-string", "keys: app\n", "keys"),
    ("key-string", "keys: [app]\n", "keys[0]"),
    ("description-number", key("description: 5"), "keys[0].description"),
    ("description-list", key("description: [a]"), "keys[0].description"),
    ("enabled-yes-string", key('enabled: "yes"'), "keys[0].enabled"),
    ("enabled-true-string", key('enabled: "true"'), "keys[0].enabled"),
    ("enabled-one", key("enabled: 1"), "keys[0].enabled"),
    ("enabled-list", key("enabled: [true]"), "keys[0].enabled"),
    (
        "deletion-protection-no-string",
        key('deletion_protection: "no"'),
        "keys[0].deletion_protection",
    ),
    (
        "bypass-yes",
        key('bypass_policy_lockout_safety_check: "yes"'),
        "keys[0].bypass_policy_lockout_safety_check",
    ),
    (
        "bypass-off",
        key('bypass_policy_lockout_safety_check: "off"'),
        "keys[0].bypass_policy_lockout_safety_check",
    ),
    (
        "bypass-one",
        key("bypass_policy_lockout_safety_check: 1"),
        "keys[0].bypass_policy_lockout_safety_check",
    ),
    (
        "bypass-zero",
        key("bypass_policy_lockout_safety_check: 0"),
        "keys[0].bypass_policy_lockout_safety_check",
    ),
    (
        "bypass-true-string",
        key('bypass_policy_lockout_safety_check: "true"'),
        "keys[0].bypass_policy_lockout_safety_check",
    ),
    ("takeover-yes", key('allow_alias_takeover: "yes"'), "keys[0].allow_alias_takeover"),
    ("inherit-no", key('inherit_defaults: "no"'), "keys[0].inherit_defaults"),
    ("grants-purge-yes", key('grants_purge: "yes"'), "keys[0].grants_purge"),
    ("multi-region-yes", key('multi_region: "yes"'), "keys[0].multi_region"),
    ("rotation-string", key('rotation: "yes"'), "keys[0].rotation"),
    ("rotation-enabled-string", key('rotation: {enabled: "true"}'), "keys[0].rotation.enabled"),
    (
        "period-string",
        key('rotation: {enabled: true, period_days: "365"}'),
        "keys[0].rotation.period_days",
    ),
    (
        "period-float",
        key("rotation: {enabled: true, period_days: 365.5}"),
        "keys[0].rotation.period_days",
    ),
    (
        "period-bool",
        key("rotation: {enabled: true, period_days: true}"),
        "keys[0].rotation.period_days",
    ),
    (
        "period-low",
        key("rotation: {enabled: true, period_days: 10}"),
        "keys[0].rotation.period_days",
    ),
    ("window-string", key('deletion_window_days: "30"'), "keys[0].deletion_window_days"),
    ("window-31", key("deletion_window_days: 31"), "keys[0].deletion_window_days"),
    ("window-6", key("deletion_window_days: 6"), "keys[0].deletion_window_days"),
    ("window-inf", key("deletion_window_days: .inf"), "keys[0].deletion_window_days"),
    ("tags-list", key("tags: [a, b]"), "keys[0].tags"),
    ("tag-number", key("tags: {Cost: 42}"), "keys[0].tags.Cost"),
    ("tag-bool", key("tags: {Public: no}"), "keys[0].tags.Public"),
    ("tag-null", key("tags: {Owner: }"), "keys[0].tags.Owner"),
    ("tag-aws-prefix", key("tags: {'aws:x': y}"), "keys[0].tags"),
    ("aliases-string", key_without_policy("aliases: alias/x"), "keys[0].aliases"),
    ("aliases-map", key_without_policy("aliases: {a: b}"), "keys[0].aliases"),
    ("targets-string", key("targets: prod"), "keys[0].targets"),
    ("policy-string", key_without_policy("policy: p.json.j2"), "keys[0].policy"),
    (
        "policy-vars-list",
        key_without_policy("policy: {template: p.json.j2, vars: [a]}"),
        "keys[0].policy.vars",
    ),
    ("key-spec-number", key("key_spec: 5"), "keys[0].key_spec"),
    ("key-spec-unknown", key("key_spec: AES_256"), "keys[0].key_spec"),
    ("key-usage-unknown", key("key_usage: WRAP"), "keys[0].key_usage"),
    ("origin-unknown", key("origin: HSM"), "keys[0].origin"),
    (
        "waiver-date",
        key("waivers: [{rule: KMS001, reason: r, owner: o, expires: soon}]"),
        "keys[0].waivers[0].expires",
    ),
    ("grants-map", key("grants: {a: b}"), "keys[0].grants"),
    ("replicas-string", key("multi_region: true", "replicas: us-west-2"), "keys[0].replicas"),
]
for id_, text, field_ in WRONG_TYPES:
    add("wrong-type", id_, {"app.yaml": text}, F, field_, plan=id_ in ("bypass-yes", "enabled-one"))

for id_, text, field_ in [
    (
        "account-number",
        INVENTORY.replace('"111122223333"', "111122223333"),
        "targets[0].account_id",
    ),
    ("account-short", INVENTORY.replace("111122223333", "1111"), "targets[0].account_id"),
    ("region-bad", INVENTORY.replace("us-east-1", "mars-1"), "targets[0].region"),
    ("region-number", INVENTORY.replace("us-east-1", "1"), "targets[0].region"),
    ("targets-map", "targets: {name: prod}\n", "targets"),
    ("targets-empty", "targets: []\n", "targets"),
    ("target-name-bad", INVENTORY.replace("name: prod", "name: Prod_1"), "targets[0].name"),
    ("duplicate-target", INVENTORY + INVENTORY.split("\n", 1)[1], "targets[1].name"),
    ("role-arn-bad", INVENTORY + "    role_arn: not-a-role\n", "targets[0].role_arn"),
    (
        "session-seconds-string",
        INVENTORY + '    session_duration_seconds: "900"\n',
        "targets[0].session_duration_seconds",
    ),
    ("defaults-enabled-string", INVENTORY + 'defaults: {enabled: "yes"}\n', "defaults.enabled"),
    ("quota-bool", INVENTORY + "request_quotas: {CreateKey: true}\n", "request_quotas"),
    ("quota-string", INVENTORY + 'request_quotas: {CreateKey: "5"}\n', "request_quotas"),
    ("quota-unknown", INVENTORY + "request_quotas: {MakeKey: 5}\n", "request_quotas"),
    ("identity-tag-aws", INVENTORY + "identity_tag: 'aws:name'\n", "identity_tag"),
    ("org-bad", INVENTORY + "organization_ids: [org-1]\n", "organization_ids[0]"),
    ("trusted-number", INVENTORY + "trusted_accounts: [444455556666]\n", "trusted_accounts[0]"),
    ("ignore-empty", INVENTORY + "ignore: [{}]\n", "ignore[0]"),
]:
    add("bad-target", id_, {"inventory.yaml": text}, INV, field_, plan=id_ == "region-bad")

# -- custom key stores (keys[0] names the store as KMS requires) -------------------------------

CKS = "custom_key_store_id: cks-1234567890abcdef0"
for id_, text, field_ in [
    ("cloudhsm-without-store", key("origin: AWS_CLOUDHSM"), "keys[0].custom_key_store_id"),
    (
        "xks-without-external-key",
        key("origin: EXTERNAL_KEY_STORE", CKS),
        "keys[0].xks_key_id",
    ),
    ("store-with-kms-origin", key(CKS), "keys[0].origin"),
    (
        "external-key-on-cloudhsm",
        key("origin: AWS_CLOUDHSM", CKS, "xks_key_id: k1"),
        "keys[0].xks_key_id",
    ),
    (
        "store-rsa",
        key("origin: AWS_CLOUDHSM", CKS, "key_spec: RSA_2048", "key_usage: SIGN_VERIFY"),
        "keys[0].key_spec",
    ),
    (
        "store-multi-region",
        key("origin: AWS_CLOUDHSM", CKS, "multi_region: true"),
        "keys[0].multi_region",
    ),
    (
        "store-id-malformed",
        key("origin: AWS_CLOUDHSM", "custom_key_store_id: my-store"),
        "keys[0].custom_key_store_id",
    ),
    (
        "external-key-id-malformed",
        key("origin: EXTERNAL_KEY_STORE", CKS, "xks_key_id: 'a b'"),
        "keys[0].xks_key_id",
    ),
]:
    add("custom-key-store", id_, {"app.yaml": text}, F, field_)

for id_, text, field_ in [
    (
        "deleted-with-file",
        key_without_policy("origin: EXTERNAL", "key_material: {deleted: true, file: m.bin}"),
        "keys[0].key_material",
    ),
    (
        "env-binary",
        key_without_policy("origin: EXTERNAL", "key_material: {env: K, encoding: binary}"),
        "keys[0].key_material",
    ),
    (
        "encoding-unknown",
        key_without_policy("origin: EXTERNAL", "key_material: {env: K, encoding: pem}"),
        "keys[0].key_material.encoding",
    ),
    (
        "external-ml-dsa",
        key_without_policy("origin: EXTERNAL", "key_spec: ML_DSA_44", "key_usage: SIGN_VERIFY"),
        "keys[0].origin",
    ),
]:
    add("key-material", id_, {"app.yaml": text}, F, field_)

# -- unknown fields ---------------------------------------------------------------------------

for id_, text, field_ in [
    ("key", key("colour: blue"), "keys[0].colour"),
    ("key-typo", key("descripton: x"), "keys[0].descripton"),
    ("key-camel", key("keySpec: SYMMETRIC_DEFAULT"), "keys[0].keySpec"),
    ("rotation", key("rotation: {enabled: true, every: 90}"), "keys[0].rotation.every"),
    (
        "policy",
        key_without_policy("policy: {template: p.json.j2, mode: strict}"),
        "keys[0].policy.mode",
    ),
    (
        "grant",
        key(
            "grants: [{name: g, grantee_principal: 'arn:aws:iam::111122223333:role/A', "
            "operations: [Decrypt], extra: 1}]"
        ),
        "keys[0].grants[0].extra",
    ),
    (
        "replica",
        key("multi_region: true", "replicas: [{region: us-west-2, colour: x}]"),
        "keys[0].replicas[0].colour",
    ),
    (
        "key-material",
        key_without_policy("origin: EXTERNAL", "key_material: {env: K, path: x}"),
        "keys[0].key_material.path",
    ),
    ("top-level", "keys: []\nextra: 1\n", "extra"),
    (
        "waiver",
        key("waivers: [{rule: KMS001, reason: r, owner: o, expires: 2999-01-01, by: me}]"),
        "keys[0].waivers[0].by",
    ),
]:
    add("unknown-field", id_, {"app.yaml": text}, F, field_)
for id_, text, field_ in [
    ("inventory", INVENTORY + "colour: blue\n", "colour"),
    ("target", INVENTORY + "    colour: blue\n", "targets[0].colour"),
    ("defaults", INVENTORY + "defaults: {colour: blue}\n", "defaults.colour"),
    ("ignore", INVENTORY + "ignore: [{alias: 'alias/x', why: y}]\n", "ignore[0].why"),
]:
    add("unknown-field", id_, {"inventory.yaml": text}, INV, field_)

# -- not UTF-8 --------------------------------------------------------------------------------

for id_, data in [
    ("latin1", b"keys:\n  - name: app\n    description: caf\xe9\n"),
    ("utf16", "keys:\n  - name: app\n".encode("utf-16")),
    ("lone-continuation", b"keys:\n  - name: app\x80\n"),
    ("surrogate", b"keys:\n  - name: app\xed\xa0\x80\n"),
    ("truncated", b"keys:\n  - name: app\xe2\x82\n"),
    ("overlong", b"keys:\n  - name: app\xc0\xaf\n"),
]:
    add("non-utf8", id_, {"app.yaml": data}, F, plan=id_ == "latin1")
add("non-utf8", "inventory", {"inventory.yaml": INVENTORY.encode() + b"# \xff\n"}, INV)
add("non-utf8", "template", {"policies/p.json.j2": b'{"Version": "2012-10-17", "Id": "\xe9"}\n'}, T)
add("non-utf8", "included", {**tpl('{% include "inc.j2" %}'), "policies/inc.j2": b"\xff\xfe"}, T)
add(
    "non-utf8",
    "policy-file",
    {
        "app.yaml": key_without_policy("policy: {file: p.json}"),
        "policies/p.json": b'{"Id": "\xe9"}',
    },
    "keyspecs/policies/p.json",
)

# -- symlinks out of the tree -----------------------------------------------------------------

SECRET = "{outside}/secret.txt"
add("symlink", "key-file", {"evil.yaml": Link(SECRET)}, "keyspecs/evil.yaml", plan=True)
add("symlink", "key-file-etc-passwd", {"evil.yaml": Link("/etc/passwd")}, "keyspecs/evil.yaml")
add(
    "symlink",
    "key-file-proc-environ",
    {"evil.yaml": Link("/proc/self/environ")},
    "keyspecs/evil.yaml",
)
add(
    "symlink", "key-file-dotdot", {"evil.yaml": Link("../outside/secret.txt")}, "keyspecs/evil.yaml"
)
add("symlink", "key-file-loop", {"loop.yaml": Link("loop.yaml")}, "keyspecs/loop.yaml")
add("symlink", "key-file-dangling", {"gone.yaml": Link("nowhere.yaml")}, "keyspecs/gone.yaml")
add("symlink", "inventory-yaml", {"inventory.yaml": Link("{outside}/inventory.yaml")}, INV)
for directive in [
    "include 'env.j2'",
    "import 'env.j2' as m",
    "from 'env.j2' import x",
    "extends 'env.j2'",
]:
    name = directive.split()[0]
    add(
        "symlink",
        f"template-{name}-outside",
        {**tpl("{% " + directive + " %}"), "policies/env.j2": Link(SECRET)},
        T,
        plan=name == "include",
    )
    add(
        "symlink",
        f"template-{name}-environ",
        {**tpl("{% " + directive + " %}"), "policies/env.j2": Link("/proc/self/environ")},
        T,
    )
add(
    "symlink",
    "template-include-app-yaml",
    {**tpl("{% include 'up.j2' %}"), "policies/up.j2": Link("../app.yaml")},
    T,
)
add("symlink", "template-include-dotdot", tpl("{% include '../app.yaml' %}"), T)
add("symlink", "template-include-absolute", tpl("{% include '/etc/passwd' %}"), T)
add("symlink", "top-template", {"policies/p.json.j2": Link(SECRET)}, F, "keys[0].policy.template")
add(
    "symlink",
    "policy-file",
    {"app.yaml": key_without_policy("policy: {file: p.json}"), "policies/p.json": Link(SECRET)},
    F,
    "keys[0].policy.file",
)
add(
    "symlink",
    "policies-dir-file",
    {
        "app.yaml": key_without_policy("policy: {file: sub/p.json}"),
        "policies/sub": Link("{outside}"),
    },
    F,
    "keys[0].policy.file",
)
add(
    "symlink",
    "key-material-outside",
    {
        "app.yaml": key_without_policy("origin: EXTERNAL", "key_material: {file: mat.bin}"),
        "mat.bin": Link(SECRET),
    },
    F,
    "keys[0].key_material.file",
)
add(
    "symlink",
    "key-material-dir",
    {"app.yaml": key_without_policy("origin: EXTERNAL", "key_material: {file: mat}"), "mat": None},
    F,
    "keys[0].key_material.file",
    plan=True,
)
add(
    "symlink",
    "key-material-absolute",
    {"app.yaml": key_without_policy("origin: EXTERNAL", "key_material: {file: /etc/passwd}")},
    F,
    "keys[0].key_material.file",
)
add(
    "symlink",
    "key-material-dotdot",
    {
        "app.yaml": key_without_policy(
            "origin: EXTERNAL", "key_material: {file: ../outside/secret.txt}"
        )
    },
    F,
    "keys[0].key_material.file",
)
add(
    "symlink",
    "key-material-both",
    {"app.yaml": key_without_policy("origin: EXTERNAL", "key_material: {file: a, env: B}")},
    F,
    "keys[0].key_material",
)
add(
    "symlink",
    "key-material-env-bad",
    {"app.yaml": key_without_policy("origin: EXTERNAL", "key_material: {env: 'A B'}")},
    F,
    "keys[0].key_material.env",
)
add(
    "symlink",
    "key-material-not-external",
    {"app.yaml": key_without_policy("key_material: {env: K}")},
    F,
    "keys[0].key_material",
)

# -- Jinja sandbox escapes --------------------------------------------------------------------

for i, expr in enumerate(
    [
        "''.__class__.__mro__[1].__subclasses__()",
        "lipsum.__globals__['os'].popen('id').read()",
        "cycler.__init__.__globals__.os.popen('id').read()",
        "joiner.__init__.__globals__",
        "namespace.__init__.__globals__",
        "self._TemplateReference__context",
        "range.__self__",
        "''.format.__globals__",
        "'{0.__class__}'.format(1)",
        "(1).__class__.__base__",
        "dict.__subclasses__()",
        "vars.__class__",
        "request.environ",
        "config.items()",
        "[].__class__.__base__.__subclasses__()",
        "'%s'.__mod__",
        "loop.__class__",
        "().__class__.__bases__[0]",
        "''|attr('__class__')",
        "'x'.translate({120: 'y' * 1000})",
        # str.format reached through |attr: jinja2 below 3.1.6 let it through (CVE-2025-27516)
        "('{0.__class__.__mro__}'|attr('format'))(1)",
    ]
):
    add("jinja-escape", f"{i:02d}", tpl('{"Id": "{{ ' + expr + ' }}"}'), T, plan=i == 1)

# -- unbounded loops and sizes ----------------------------------------------------------------

for i, body in enumerate(
    [
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "{% for i in range(1000) %}{% for j in range(1000) %}{{ '' }}{% endfor %}{% endfor %}",
        "{% for c in 'x' * 100000 %}{% for d in 'y' * 100000 %}{% endfor %}{% endfor %}",
        "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(40) }}",
        "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
        "{{ '%0999999999d' % 0 }}",
        "{{ '%.999999999f' % 1 }}",
        "{{ '%(a)999999999s' % {'a': 1} }}",
        "{{ '%*d' % (999999999, 1) }}",
        "{{ '{:>999999999}'.format(1) }}",
        "{{ '{:{}}'.format(1, '999999999') }}",
        "{{ '{x:0999999999}'.format_map({'x': 1}) }}",
        "{{ '%0999999999d'|format(0) }}",
        "{{ range(100000)|join(',') }}",
        "{{ ['a' * 100000] * 100000|join }}",
        "{{ ([('a' * 100000)] * 100000)|join }}",
        "{{ ','.join(['a' * 100000] * 100000) }}",
        "{{ ('a' * 100000).replace('', 'b' * 1000) }}",
        "{{ ('a' * 100000)|replace('a', 'b' * 1000) }}",
        "{{ ('\\t' * 100000).expandtabs(100000) }}",
        "{{ ('\\n' * 100000)|indent(100000) }}",
        "{{ ('a ' * 50000)|wordwrap(1, wrapstring='x' * 100000) }}",
        "{% set ns = namespace(s='a') %}{% for i in range(40) %}"
        "{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "{% set ns = namespace(s='a') %}{% for i in range(40) %}"
        "{% set ns.s = ns.s + ns.s %}{% endfor %}",
        "{% set ns = namespace(l=[1]) %}{% for i in range(40) %}"
        "{% set ns.l = ns.l + ns.l %}{% endfor %}",
        "{% set l = [1] %}{% for i in range(40) %}{{ l.extend(l) }}{% endfor %}",
        "{{ lipsum(10000) }}",
        "{{ lipsum(100, min=100000, max=100000) }}",
        "{{ 'a' * 10**9 }}",
        "{{ 2 ** 10**9 }}",
        "{{ range(10**9)|list }}",
        "{{ [[1] * 1000] * 1000|sum(start=[]) }}",
        "{{ 'a'.encode() * 10**9 }}",
        "{% for i in range(90000) %}xxxxxxxxxxxx{% endfor %}",
        "{{ 'x'.center(10**9) }}",
    ]
):
    add("jinja-loop", f"{i:02d}", tpl(body), T, plan=i in (0, 5, 22))

# -- policies: over 32 KB, duplicates, principals, lockouts ---------------------------------

BIG_SID = "x" * 40_000
add(
    "policy-size",
    "template",
    tpl(policy_with(f', "Condition": {{"StringEquals": {{"aws:PrincipalTag/x": "{BIG_SID}"}}}}')),
    F,
    "keys[0].policy",
    plan=True,
)
add(
    "policy-size",
    "file",
    {
        "app.yaml": key_without_policy("policy: {file: p.json}"),
        "policies/p.json": policy_with(f', "Condition": {{"StringEquals": {{"k": "{BIG_SID}"}}}}'),
    },
    F,
    "keys[0].policy",
)
add(
    "policy-size",
    "document",
    {
        "app.yaml": key_without_policy(
            "policy:",
            "  document:",
            "    Version: '2012-10-17'",
            f"    Id: {BIG_SID}",
            "    Statement: [{Effect: Allow, Principal: '*', Action: 'kms:*', Resource: '*'}]",
        )
    },
    F,
    "keys[0].policy",
)
add(
    "policy-size",
    "loop",
    tpl(
        '{"Version": "2012-10-17", "Id": "{% for i in range(5000) %}abcdefghij{% endfor %}", '
        '"Statement": []}'
    ),
    F,
    "keys[0].policy",
)
add("policy-size", "template-file-2mib", tpl("{# " + "x" * (2 * 1024 * 1024) + " #}"), T, plan=True)

for id_, body, file_ in [
    (
        "effect",
        policy_with().replace('"Effect": "Allow"', '"Effect": "Deny", "Effect": "Allow"'),
        T,
    ),
    ("statement", '{"Version": "2012-10-17", "Statement": [], "Statement": []}', T),
    ("version", '{"Version": "2012-10-17", "Version": "2008-10-17", "Statement": []}', T),
    ("principal", policy_with().replace('"Principal"', '"Principal": "*", "Principal"'), T),
    ("condition-key", policy_with(', "Condition": {"StringEquals": {"a": "1", "a": "2"}}'), T),
    (
        "escaped-name",
        policy_with().replace('"Effect": "Allow"', '"Effect": "Allow", "\\u0045ffect": "Deny"'),
        T,
    ),
]:
    add("json-duplicate", id_, tpl(body), file_, plan=id_ == "effect")
add(
    "json-duplicate",
    "policy-file",
    {
        "app.yaml": key_without_policy("policy: {file: p.json}"),
        "policies/p.json": '{"Statement": [], "Statement": []}',
    },
    "keyspecs/policies/p.json",
)

for id_, principal in [
    ("not-an-arn", '{"AWS": "not-an-arn"}'),
    ("unique-id", '{"AWS": "AROAEXAMPLEID1234567"}'),
    ("short-account", '{"AWS": "1234"}'),
    ("s3-arn", '{"AWS": "arn:aws:s3:::bucket"}'),
    ("list-one-bad", '{"AWS": ["arn:aws:iam::111122223333:root", "nobody"]}'),
    ("service-bad", '{"Service": "not a service"}'),
    ("service-arn", '{"Service": "arn:aws:iam::111122223333:root"}'),
    ("type-unknown", '{"Group": "x"}'),
    ("empty-map", "{}"),
    ("number", "5"),
]:
    add(
        "principal",
        id_,
        tpl(policy_with(principal=principal)),
        F,
        "keys[0].policy",
        plan=id_ == "not-an-arn",
    )
add(
    "principal",
    "inline-document",
    {
        "app.yaml": key_without_policy(
            "policy:",
            "  document: {Version: '2012-10-17', Statement: [{Effect: Allow, "
            "Principal: {AWS: not-an-arn}, Action: 'kms:*', Resource: '*'}]}",
        )
    },
    F,
    "keys[0].policy.document",
)

# Lockouts need the caller's identity (a plan error, tested in test_planner); offline,
# these are the lockout-related inputs that must be refused.
add(
    "lockout",
    "bypass-yes-string",
    {"app.yaml": key('bypass_policy_lockout_safety_check: "yes"')},
    F,
    "keys[0].bypass_policy_lockout_safety_check",
)
add(
    "lockout",
    "bypass-on-string",
    {"app.yaml": key('bypass_policy_lockout_safety_check: "on"')},
    F,
    "keys[0].bypass_policy_lockout_safety_check",
)
add(
    "lockout",
    "bypass-list",
    {"app.yaml": key("bypass_policy_lockout_safety_check: [true]")},
    F,
    "keys[0].bypass_policy_lockout_safety_check",
)
add(
    "lockout",
    "effect-missing",
    tpl(
        '{"Version": "2012-10-17", '
        '"Statement": [{"Principal": "*", "Action": "kms:*", "Resource": "*"}]}'
    ),
    F,
    "keys[0].policy",
)
add(
    "lockout",
    "effect-lowercase",
    tpl(policy_with().replace('"Allow"', '"allow"')),
    F,
    "keys[0].policy",
)
add("lockout", "no-statement", tpl('{"Version": "2012-10-17"}'), F, "keys[0].policy")

# -- templates: other mistakes ----------------------------------------------------------------

for id_, body in [
    ("syntax", "{% if %}"),
    ("undefined", '{"Id": "{{ nothing }}"}'),
    ("not-json", "not json"),
    ("json-array", "[1, 2]"),
    ("empty", "{# nothing #}"),
    ("include-missing", "{% include 'missing.j2' %}"),
    ("division", "{{ 1 / 0 }}"),
    ("deep-json", "[" * 100_000 + "]" * 100_000),
]:
    add("template", id_, tpl(body), T)
add(
    "template",
    "missing",
    {"app.yaml": key_without_policy("policy: {template: nope.j2}")},
    F,
    "keys[0].policy.template",
)
add(
    "template",
    "absolute",
    {"app.yaml": key_without_policy("policy: {template: /etc/passwd}")},
    F,
    "keys[0].policy.template",
)
add(
    "template",
    "dotdot",
    {"app.yaml": key_without_policy("policy: {template: ../app.yaml}")},
    F,
    "keys[0].policy.template",
)
add(
    "template",
    "directory",
    {"app.yaml": key_without_policy("policy: {file: sub}"), "policies/sub": None},
    F,
    "keys[0].policy.file",
)
add(
    "template",
    "two-sources",
    {"app.yaml": key_without_policy("policy: {template: p.json.j2, file: p.json}")},
    F,
    "keys[0].policy",
)

# -- bad aliases and names ----------------------------------------------------------------

for id_, text, field_ in [
    ("no-prefix", key_without_policy("aliases: [app]"), "keys[0].aliases[0]"),
    ("reserved", key_without_policy("aliases: [alias/aws/x]"), "keys[0].aliases[0]"),
    ("reserved-case", key_without_policy("aliases: [alias/AWS/x]"), "keys[0].aliases[0]"),
    ("too-long", key_without_policy("aliases: [alias/" + "a" * 300 + "]"), "keys[0].aliases[0]"),
    ("bad-chars", key_without_policy("aliases: ['alias/a b']"), "keys[0].aliases[0]"),
    ("unicode", key_without_policy("aliases: [alias/ä]"), "keys[0].aliases[0]"),
    ("empty", key_without_policy("aliases: [alias/]"), "keys[0].aliases[0]"),
    ("number", key_without_policy("aliases: [5]"), "keys[0].aliases[0]"),
    ("twice", key_without_policy("aliases: [alias/a, alias/a]"), "keys[0].aliases[1]"),
    (
        "fifty-one",
        key_without_policy("aliases: [" + ", ".join(f"alias/a{i}" for i in range(51)) + "]"),
        "keys[0].aliases",
    ),
    ("unknown-target", key("targets: [nowhere]"), "keys[0].targets[0]"),
    ("name-upper", "keys:\n  - name: App\n", "keys[0].name"),
    ("name-long", "keys:\n  - name: " + "a" * 200 + "\n", "keys[0].name"),
    ("name-dash-end", "keys:\n  - name: app-\n", "keys[0].name"),
    ("name-twice", KEY + KEY.split("\n", 1)[1], "keys[1].name"),
    (
        "alias-two-keys",
        key_without_policy("aliases: [alias/x]") + "  - name: other\n    aliases: [alias/x]\n",
        "keys[1].aliases[0]",
    ),
    (
        "replica-region-twice",
        key("multi_region: true", "replicas: [{region: us-west-2}, {region: us-west-2}]"),
        "keys[0].replicas[1].region",
    ),
    ("replica-not-multi", key("replicas: [{region: us-west-2}]"), "keys[0].replicas"),
    (
        "replica-own-region",
        key("multi_region: true", "replicas: [{region: us-east-1}]"),
        "keys[0].replicas[0].region",
    ),
    (
        "grant-principal",
        key("grants: [{name: g, grantee_principal: not-an-arn, operations: [Decrypt]}]"),
        "keys[0].grants[0].grantee_principal",
    ),
    (
        "grant-op",
        key(
            "grants: [{name: g, grantee_principal: 'arn:aws:iam::111122223333:role/A', "
            "operations: [Fly]}]"
        ),
        "keys[0].grants[0].operations[0]",
    ),
]:
    add(
        "bad-alias", id_, {"app.yaml": text}, F, field_, plan=id_ in ("no-prefix", "unknown-target")
    )


# -- running -----------------------------------------------------------------------------


def build(root: Path, case: Case) -> None:
    """The base inventory under ``root/keyspecs`` with the case's files, and a folder
    outside it whose files hold MARKER."""
    outside = root / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(f"{MARKER}\n", encoding="utf-8")
    (outside / "inventory.yaml").write_text(INVENTORY + f"# {MARKER}\n", encoding="utf-8")
    base = root / "keyspecs"
    (base / "policies").mkdir(parents=True)
    files: dict[str, str | bytes | Link | None] = {
        "inventory.yaml": INVENTORY,
        "app.yaml": KEY,
        "policies/p.json.j2": TEMPLATE,
        **case.files,
    }
    for name, content in files.items():
        path = base / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            path.mkdir()
        elif isinstance(content, Link):
            path.symlink_to(content.target.replace("{outside}", str(outside)))
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


def check(case: Case, code: int, stdout: str, stderr: str, seconds: float) -> None:
    shown = f"exit {code}\n--- stdout\n{stdout[:2000]}\n--- stderr\n{stderr[:4000]}"
    assert code == 1, shown
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines, shown
    assert all(line.startswith("error: ") for line in lines), shown
    assert "Traceback" not in stdout + stderr, shown
    assert MARKER not in stdout + stderr, shown
    assert any(line.startswith(f"error: {case.file}") for line in lines), shown
    if case.field is not None:
        named = [line for line in lines if line.startswith(f"error: {case.file}")]
        assert any(f" {case.field}" in line or f": {case.field}" in line for line in named), shown
    assert seconds < LIMIT_SECONDS, f"{seconds:.2f}s\n{shown}"


def test_the_corpus_is_large_and_its_ids_are_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(CASES) >= 200
    kinds = {c.kind for c in CASES}
    assert {
        "yaml-bomb",
        "non-utf8",
        "symlink",
        "jinja-escape",
        "jinja-loop",
        "policy-size",
    } <= kinds
    assert sum(c.plan for c in CASES) >= 20


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_validate_refuses_bad_input_with_one_line_per_problem(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build(tmp_path, case)
    monkeypatch.chdir(tmp_path)
    started = time.monotonic()
    result = CliRunner().invoke(main, ["validate", "keyspecs"])
    seconds = time.monotonic() - started
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    check(case, result.exit_code, result.stdout, result.stderr, seconds)


# -- a sample as real subprocesses, plan included, against a recording server ----------------


class _Recorder(http.server.BaseHTTPRequestHandler):
    requests: ClassVar[list[str]] = []

    def _any(self) -> None:
        type(self).requests.append(f"{self.command} {self.path}")
        self.send_response(500)
        self.end_headers()

    do_GET = do_POST = do_PUT = do_HEAD = _any

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def recorder() -> Iterator[tuple[str, list[str]]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Recorder.requests
    finally:
        server.shutdown()


def _env(home: Path, endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KMS_RECONCILER_"))}
    env.update(
        {
            "HOME": str(home),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": str(home / "none"),
            "AWS_SHARED_CREDENTIALS_FILE": str(home / "none"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ENDPOINT_URL_KMS": endpoint,
            "AWS_ENDPOINT_URL_STS": endpoint,
        }
    )
    return env


PLAN_CASES = [c for c in CASES if c.plan]


@pytest.mark.parametrize("command", ["validate", "plan"])
@pytest.mark.parametrize("case", PLAN_CASES, ids=[c.id for c in PLAN_CASES])
def test_the_real_cli_refuses_bad_input_before_any_aws_request(
    case: Case, command: str, tmp_path: Path, recorder: tuple[str, list[str]]
) -> None:
    endpoint, requests = recorder
    build(tmp_path, case)
    before = len(requests)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", command, "keyspecs"],
        cwd=tmp_path,
        env=_env(tmp_path, endpoint),
        capture_output=True,
        text=True,
        timeout=60,
    )
    seconds = time.monotonic() - started
    # the subprocess starts Python and imports the tool (about half a second)
    check(case, done.returncode, done.stdout, done.stderr, seconds)
    assert len(requests) == before, requests[before:]


def test_the_recording_server_sees_a_plan_of_valid_input(
    tmp_path: Path, recorder: tuple[str, list[str]]
) -> None:
    """The proof of zero requests above means something: a valid inventory does call it."""
    endpoint, requests = recorder
    build(tmp_path, Case("valid", "valid", {}, F))
    before = len(requests)
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "plan", "keyspecs"],
        cwd=tmp_path,
        env=_env(tmp_path, endpoint),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert len(requests) > before
