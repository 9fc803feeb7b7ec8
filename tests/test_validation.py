"""Validation corpus: every kind of bad input, with the exact file, line and field it names.

The product rule (DESIGN sections 3 and 6): bad input always gets one clear line naming the
file, line, field and key, exit code 1 and no AWS call, and ``validate`` reports every
mistake at once. Each table row builds a small inventory under ``tmp_path/keyspecs``, runs
``load_inventory`` then ``build_desired`` for every target, and compares ``str(problem)``
with an expected ``file:line: field: `` prefix and a message fragment.

The tests run in ``tmp_path`` so that paths print as the user sees them
(``keyspecs/app.yaml:3: ...``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import botocore.client
import pytest
import yaml
from click.testing import CliRunner

from reconciler import catalog
from reconciler.cli import main
from reconciler.desired import build_desired
from reconciler.errors import InputError
from reconciler.loader import load_inventory
from reconciler.state import DesiredKey, DesiredTarget

REPO = Path(__file__).resolve().parents[1]
ROOT = "keyspecs"  # relative to tmp_path, the working directory of every test
F = "keyspecs/app.yaml"  # the key file most rows write
INV = "keyspecs/inventory.yaml"

# Two targets in different accounts and regions; no defaults.
INVENTORY = """\
targets:
  - name: prod
    account_id: "111122223333"
    region: us-east-1
  - name: dev
    account_id: "444455556666"
    region: eu-west-1
"""

# One target in a China Region, where every key spec (SM2 too) exists.
CN_INVENTORY = """\
targets:
  - name: china
    account_id: "111122223333"
    region: cn-north-1
"""

US_INVENTORY = CN_INVENTORY.replace("china", "us").replace("cn-north-1", "us-east-1")

Files = Mapping[str, "str | dict[str, Any]"]
Expected = list[tuple[str, str]]  # (exact "file:line: field: " prefix, message fragment)


# -- helpers ------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def key(*fields: str, name: str = "app") -> str:
    """A key file with one key named `name` (line 2); `fields` are its lines from line 3."""
    return f"keys:\n  - name: {name}\n" + "".join(f"    {line}\n" for line in fields if line)


def _text(content: str | dict[str, Any]) -> str:
    return content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)


def write_inventory(
    files: Files | None = None,
    *,
    inventory: str | dict[str, Any] = INVENTORY,
    policies: Files | None = None,
) -> Path:
    """Write ./keyspecs: inventory.yaml, key files and policies/ (strings are written as is,
    dicts as YAML or, under policies/, as JSON)."""
    root = Path(ROOT)
    (root / "policies").mkdir(parents=True, exist_ok=True)
    (root / "inventory.yaml").write_text(_text(inventory), encoding="utf-8")
    for name, content in (files or {}).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_text(content), encoding="utf-8")
    for name, content in (policies or {}).items():
        text = content if isinstance(content, str) else json.dumps(content, indent=2)
        path = root / "policies" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def problems_of(
    files: Files | None = None,
    *,
    inventory: str | dict[str, Any] = INVENTORY,
    policies: Files | None = None,
) -> list[str]:
    """Every problem `validate` would report for this inventory, as printed lines."""
    root = write_inventory(files, inventory=inventory, policies=policies)
    try:
        loaded = load_inventory(root)
        build_desired(loaded, loaded.settings.targets)
    except InputError as exc:
        assert exc.problems, "an InputError without problems"
        return [str(p) for p in exc.problems]
    return []


def desired_of(
    files: Files | None = None,
    *,
    inventory: str | dict[str, Any] = INVENTORY,
    policies: Files | None = None,
) -> list[DesiredTarget]:
    """The desired state of a valid inventory (fails the test with the problems if not)."""
    found = problems_of(files, inventory=inventory, policies=policies)
    assert found == [], "\n".join(found)
    loaded = load_inventory(ROOT)
    return build_desired(loaded, loaded.settings.targets)


def only_key(desired: list[DesiredTarget], target: str | None = None) -> DesiredKey:
    chosen = [dt for dt in desired if target is None or dt.target.name == target]
    keys = [k for dt in chosen for k in dt.keys]
    assert keys, "no desired key"
    return keys[0]


def assert_problems(found: list[str], expected: Expected) -> None:
    """Exactly the expected problems, in order: each starts with its exact location prefix
    (file, line, field path) and contains its message fragment."""
    shown = "\n".join(found)
    assert len(found) == len(expected), f"expected {len(expected)} problem(s), got:\n{shown}"
    for line, (prefix, fragment) in zip(found, expected, strict=True):
        assert line.startswith(prefix), f"{line!r} does not start with {prefix!r}"
        assert fragment in line, f"{fragment!r} not in {line!r}"
        assert "\n" not in line


def case(id: str, *values: Any) -> Any:
    return pytest.param(*values, id=id)


# -- schema: unknown and missing fields -----------------------------------------------------

KEY_FILE_CASES = [
    case(
        "unknown-field-key-level",
        key("description: x", "colour: red"),
        [(f"{F}:4: keys[0].colour: ", "unknown field (key 'app')")],
    ),
    case(
        "unknown-field-rotation-level",
        key("rotation:", "  enabled: true", "  period: 90"),
        [(f"{F}:5: keys[0].rotation.period: ", "unknown field (key 'app')")],
    ),
    case(
        "unknown-field-policy-level",
        key("policy:", "  template: p.json.j2", "  varz: {a: 1}"),
        [(f"{F}:5: keys[0].policy.varz: ", "unknown field (key 'app')")],
    ),
    case(
        "unknown-field-second-key",
        key("description: ok") + "  - name: other\n    alias: alias/x\n",
        [(f"{F}:5: keys[1].alias: ", "unknown field (key 'other')")],
    ),
    case(
        "missing-name",
        "keys:\n  - description: no name\n",
        [(f"{F}:2: keys[0].name: ", "is required")],
    ),
    case(
        "name-not-a-string",
        "keys:\n  - name: 42\n",
        [(f"{F}:2: keys[0].name: ", "must be a string, not the number 42")],
    ),
    case(
        "key-not-a-mapping",
        "keys:\n  - app\n",
        [(f"{F}:2: keys[0]: ", "must be a mapping")],
    ),
    case(
        "targets-not-a-list",
        key("targets: prod"),
        [(f"{F}:3: keys[0].targets: ", "must be a list, not 'prod' (key 'app')")],
    ),
    case(
        "aliases-not-a-list",
        key("aliases: alias/app"),
        [(f"{F}:3: keys[0].aliases: ", "must be a list, not 'alias/app'")],
    ),
    case(
        "policy-vars-not-a-mapping",
        key("policy:", "  template: p.json.j2", "  vars: [a, b]"),
        [(f"{F}:5: keys[0].policy.vars: ", "must be a mapping")],
    ),
    case(
        "description-too-long",
        key("description: " + "d" * (catalog.DESCRIPTION_MAX + 1)),
        [(f"{F}:3: keys[0].description: ", f"longer than {catalog.DESCRIPTION_MAX}")],
    ),
    case(
        "unknown-origin",
        key("origin: AWS_HSM"),
        [(f"{F}:3: keys[0].origin: ", "'AWS_HSM' is not supported")],
    ),
    case(
        "enabled-as-string",
        key("enabled: 'yes'"),
        [(f"{F}:3: keys[0].enabled: ", "must be true or false, not 'yes'")],
    ),
]


@pytest.mark.parametrize(("text", "expected"), KEY_FILE_CASES)
def test_key_file_schema(text: str, expected: Expected) -> None:
    assert_problems(problems_of({"app.yaml": text}), expected)


INVENTORY_CASES = [
    case(
        "unknown-field-inventory-level",
        INVENTORY + "colour: red\n",
        [(f"{INV}:8: colour: ", "unknown field")],
    ),
    case(
        "unknown-field-target-level",
        INVENTORY + "    colour: red\n",
        [(f"{INV}:8: targets[1].colour: ", "unknown field")],
    ),
    case(
        "unknown-field-inventory-defaults",
        INVENTORY + "defaults:\n  colour: red\n",
        [(f"{INV}:9: defaults.colour: ", "unknown field")],
    ),
    case(
        "missing-targets-list",
        "defaults: {}\n",
        [(f"{INV}:1: targets: ", "is required")],
    ),
    case(
        "empty-targets-list",
        "targets: []\n",
        [(f"{INV}:1: targets: ", "declare at least one target")],
    ),
    case(
        "missing-account-id",
        "targets:\n  - name: prod\n    region: us-east-1\n",
        [(f"{INV}:2: targets[0].account_id: ", "is required")],
    ),
    case(
        "missing-region",
        'targets:\n  - name: prod\n    account_id: "111122223333"\n',
        [(f"{INV}:2: targets[0].region: ", "is required")],
    ),
    case(
        "missing-target-name",
        'targets:\n  - account_id: "111122223333"\n    region: us-east-1\n',
        [(f"{INV}:2: targets[0].name: ", "is required")],
    ),
    case(
        "account-id-unquoted-int",
        "targets:\n  - name: prod\n    account_id: 111122223333\n    region: us-east-1\n",
        [(f"{INV}:3: targets[0].account_id: ", 'must be quoted ("111122223333")')],
    ),
    case(
        "account-id-unquoted-leading-zero",  # YAML 1.1 reads 0-prefixed digits as octal
        "targets:\n  - name: prod\n    account_id: 011122223333\n    region: us-east-1\n",
        [(f"{INV}:3: targets[0].account_id: ", "must be quoted: YAML reads the unquoted")],
    ),
    case(
        "account-id-11-digits",
        "targets:\n  - name: prod\n    account_id: '11112222333'\n    region: us-east-1\n",
        [(f"{INV}:3: targets[0].account_id: ", "'11112222333' is not a 12-digit AWS account")],
    ),
    case(
        "account-id-letters",
        "targets:\n  - name: prod\n    account_id: '11112222333a'\n    region: us-east-1\n",
        [(f"{INV}:3: targets[0].account_id: ", "is not a 12-digit AWS account ID")],
    ),
    case(
        "region-without-dashes",
        "targets:\n  - name: prod\n    account_id: '111122223333'\n    region: useast1\n",
        [(f"{INV}:4: targets[0].region: ", "'useast1' is not an AWS Region name")],
    ),
    case(
        "target-name-uppercase",
        "targets:\n  - name: Prod\n    account_id: '111122223333'\n    region: us-east-1\n",
        [(f"{INV}:2: targets[0].name: ", "'Prod' is not a valid name")],
    ),
    case(
        "duplicate-target-names",
        INVENTORY + "  - name: prod\n    account_id: '111122223333'\n    region: us-west-2\n",
        [(f"{INV}:8: targets[2].name: ", "target name 'prod' is already used by targets[0]")],
    ),
    case(
        "identity-tag-reserved-prefix",
        INVENTORY + "identity_tag: 'aws:owner'\n",
        [(f"{INV}:8: identity_tag: ", "uses the prefix 'aws:'")],
    ),
    case(
        "ignore-rule-without-matcher",
        INVENTORY + "ignore:\n  - {}\n",
        [(f"{INV}:9: ignore[0]: ", "give exactly one of 'key_id', 'alias' or 'tag'")],
    ),
    case(
        "request-quota-unknown-operation",
        INVENTORY + "request_quotas: {DescribeKeys: 10}\n",
        [(f"{INV}:8: request_quotas: ", "unknown KMS operation DescribeKeys")],
    ),
    case(
        "defaults-out-of-range",
        INVENTORY + "defaults:\n  rotation: {period_days: 10}\n  deletion_window_days: 3\n",
        [
            (f"{INV}:9: defaults.rotation.period_days: ", "must be between 90 and 2560"),
            (f"{INV}:10: defaults.deletion_window_days: ", "must be between 7 and 30"),
        ],
    ),
    case(
        "target-defaults-reserved-tag",
        INVENTORY + "    defaults:\n      tags: {'aws:team': x}\n",
        [(f"{INV}:9: targets[1].defaults.tags['aws:team']: ", "uses the prefix 'aws:'")],
    ),
    case(
        "review-deployer-not-an-arn",
        INVENTORY + "review:\n  deployer_arns: [ci-role]\n",
        [(f"{INV}:9: review.deployer_arns[0]: ", "'ci-role' is not an IAM principal ARN")],
    ),
    case(
        "review-fan-out-below-two",
        INVENTORY + "review:\n  fan_out_threshold: 1\n",
        [(f"{INV}:9: review.fan_out_threshold: ", "must be between 2 and 10000")],
    ),
    case(
        "review-unknown-setting",
        INVENTORY + "review:\n  deployers: []\n",
        [(f"{INV}:9: review.deployers: ", "")],
    ),
    case(
        "inventory-is-a-list",
        "- name: prod\n",
        [(f"{INV}:1: ", "must be a mapping (field: value lines), not a list")],
    ),
    case(
        "inventory-empty",
        "",
        [(f"{INV}:1: ", "the file is empty")],
    ),
    case(
        "inventory-yaml-syntax-error",
        INVENTORY + "defaults: {tags: {a: b}\n",
        [(f"{INV}:9: ", "invalid YAML")],
    ),
]


@pytest.mark.parametrize(("inventory", "expected"), INVENTORY_CASES)
def test_inventory_schema(inventory: str, expected: Expected) -> None:
    assert_problems(problems_of({}, inventory=inventory), expected)


def test_review_settings_reach_the_desired_targets() -> None:
    inventory = INVENTORY + (
        "review:\n"
        "  deployer_arns: [arn:aws:iam::111122223333:role/ci]\n"
        "  fan_out_threshold: 3\n"
        "  require_deny_on_bypass: true\n"
    )
    for dt in desired_of({"app.yaml": key()}, inventory=inventory):
        assert dt.deployer_arns == ("arn:aws:iam::111122223333:role/ci",)
        assert (dt.fan_out_threshold, dt.require_deny_on_bypass) == (3, True)
    (default,) = desired_of({"app.yaml": key()}, inventory=INVENTORY)[:1]
    assert (default.deployer_arns, default.fan_out_threshold) == ((), 5)
    assert default.require_deny_on_bypass is False


def test_missing_inventory_file_is_reported() -> None:
    root = write_inventory({"app.yaml": key()})
    (root / "inventory.yaml").unlink()
    with pytest.raises(InputError) as info:
        load_inventory(root)
    assert [str(p) for p in info.value.problems] == ["no inventory.yaml in 'keyspecs'"]


def test_missing_inventory_directory_is_reported() -> None:
    with pytest.raises(InputError, match="inventory directory 'nowhere' does not exist"):
        load_inventory("nowhere")


# -- names ----------------------------------------------------------------------------------

NAME_RULE = "is not a valid name: use lower-case letters, digits and '-'"


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        case("uppercase", "App-Data", f"'App-Data' {NAME_RULE}"),
        case("underscore", "app_data", f"'app_data' {NAME_RULE}"),
        case("leading-dash", "-app", f"'-app' {NAME_RULE}"),
        case("trailing-dash", "app-", f"'app-' {NAME_RULE}"),
        case("space", "app data", f"'app data' {NAME_RULE}"),
        case("too-long-129", "a" * 129, "is 129 characters long; names have at most 128"),
        case("empty", "", f"'' {NAME_RULE}"),
    ],
)
def test_bad_key_names(name: str, fragment: str) -> None:
    assert_problems(
        problems_of({"app.yaml": f"keys:\n  - name: '{name}'\n"}),
        [(f"{F}:2: keys[0].name: ", fragment)],
    )


@pytest.mark.parametrize(
    ("field", "written", "fragment"),
    [
        case("name", "name", '"app\\n"', f"'app\\n' {NAME_RULE}"),
        case("alias", "aliases", '["alias/app\\n"]', "may contain only letters, digits, '/'"),
        case(
            "grant-name",
            "grants",
            '[{name: "g\\n", grantee_principal: "arn:aws:iam::111122223333:role/a", '
            "operations: [Decrypt]}]",
            "is not a valid grant name",
        ),
    ],
)
def test_a_trailing_newline_is_not_part_of_a_valid_name(
    field: str, written: str, fragment: str
) -> None:
    # A regex `$` also matches before a final newline: names are matched whole. The message
    # shows the newline escaped, so it stays one line.
    head = "" if field == "name" else "  - name: app\n    "
    line = f"{field}: {written}" if field != "name" else f"  - name: {written}"
    found = problems_of({"app.yaml": f"keys:\n{head}{line}\n"})
    assert len(found) == 1 and fragment in found[0] and "\n" not in found[0], found


@pytest.mark.parametrize(
    "name",
    [
        case("one-char", "a"),
        case("digits-quoted", "'0123'"),
        case("dashes", "app-data-2"),
        case("max-128", "a" * 128),
    ],
)
def test_good_key_names(name: str) -> None:
    assert only_key(desired_of({"app.yaml": key(name=name)})).state.name == name.strip("'")


@pytest.mark.parametrize(
    ("written", "fragment"),
    [
        case(
            "octal-looking-digits", "0123", "must be a string, not the number 83 (written as 0123)"
        ),
        case("plain-number", "42", "must be a string, not the number 42"),
        case("boolean-word", "yes", "must be a string, not true (written as yes)"),
        case("empty", "", "must be a string, not an empty value"),
    ],
)
def test_unquoted_non_string_key_names(written: str, fragment: str) -> None:
    found = problems_of({"app.yaml": f"keys:\n  - name: {written}\n"})
    assert_problems(found, [(f"{F}:2: keys[0].name: ", fragment)])
    assert found[0].endswith(fragment)  # no key name: it is not a usable name


@pytest.mark.parametrize(
    ("first_targets", "second_targets", "expected"),
    [
        case(
            "every-target",
            "",
            "",
            [
                (
                    "keyspecs/b.yaml:3: keys[1].name: ",
                    "already used by keyspecs/a.yaml:2 in targets 'prod', 'dev' (key 'shared')",
                )
            ],
        ),
        case(
            "overlap-in-one-target",
            "targets: [prod]",
            "targets: [dev, prod]",
            [
                (
                    "keyspecs/b.yaml:3: keys[1].name: ",
                    "the name 'shared' is already used by keyspecs/a.yaml:2 "
                    "in target 'prod' (key 'shared')",
                )
            ],
        ),
        case("disjoint-targets-ok", "targets: [prod]", "targets: [dev]", []),
    ],
)
def test_duplicate_names_across_files(
    first_targets: str, second_targets: str, expected: Expected
) -> None:
    files = {
        "a.yaml": key(first_targets, name="shared"),
        "b.yaml": "keys:\n  - name: other\n  - name: shared\n" + f"    {second_targets}\n",
    }
    assert_problems(problems_of(files), expected)


def test_same_name_in_disjoint_targets_gives_one_key_per_target() -> None:
    desired = desired_of(
        {
            "a.yaml": key("targets: [prod]", "description: in prod", name="shared"),
            "b.yaml": key("targets: [dev]", "description: in dev", name="shared"),
        }
    )
    assert only_key(desired, "prod").state.description == "in prod"
    assert only_key(desired, "dev").state.description == "in dev"


# -- aliases --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alias", "fragment"),
    [
        case("no-alias-prefix", "app-data", "'app-data' must start with 'alias/'"),
        case("reserved-alias-aws", "alias/aws/s3", "uses the prefix 'alias/aws/', which AWS"),
        case("reserved-alias-aws-uppercase", "alias/AWS/s3", "uses the prefix 'alias/aws/'"),
        case(
            "reserved-alias-apply-lock",
            "alias/kms-reconciler/apply-lock",
            "which kms-reconciler keeps for its apply lock",
        ),
        case("space", "alias/app data", "may contain only letters, digits, '/', '_' and '-'"),
        case("colon", "alias/app:data", "may contain only letters, digits, '/', '_' and '-'"),
        case("only-prefix", "alias/", "may contain only letters, digits"),
        case("longer-than-256", "alias/" + "a" * 251, "is longer than 256 characters"),
    ],
)
def test_bad_aliases(alias: str, fragment: str) -> None:
    assert_problems(
        problems_of({"app.yaml": key("aliases:", "  - alias/fine", f"  - '{alias}'")}),
        [(f"{F}:5: keys[0].aliases[1]: ", fragment + "")],
    )


def test_alias_of_256_characters_is_accepted() -> None:
    alias = "alias/" + "a" * 250
    assert only_key(desired_of({"app.yaml": key(f"aliases: [{alias}]")})).state.aliases == {alias}


def test_duplicate_alias_within_a_key_names_the_repeat() -> None:
    text = key("aliases:", "  - alias/one", "  - alias/two", "  - alias/one")
    assert_problems(
        problems_of({"app.yaml": text}),
        [(f"{F}:6: keys[0].aliases[2]: ", "alias/one is already listed as aliases[0]")],
    )


@pytest.mark.parametrize(
    ("first_targets", "second_targets", "expected"),
    [
        case(
            "same-target",
            "",
            "",
            [
                (
                    f"{F}:5: keys[1].aliases[0]: ",
                    "alias/shared is already declared by key 'app' (keyspecs/app.yaml:2) "
                    "in targets 'prod', 'dev' (key 'other')",
                )
            ],
        ),
        case("disjoint-targets-ok", "targets: [prod]", "targets: [dev]", []),
    ],
)
def test_duplicate_alias_across_keys(
    first_targets: str, second_targets: str, expected: Expected
) -> None:
    text = key(first_targets, "aliases: [alias/shared]") + key(
        second_targets, "aliases: [alias/shared]", name="other"
    ).removeprefix("keys:\n")
    assert_problems(problems_of({"app.yaml": text}), expected)


# -- key spec x key usage -------------------------------------------------------------------

MATRIX = [
    pytest.param(
        spec,
        usage,
        usage in allowed,
        id=f"{spec}-{usage}-{'ok' if usage in allowed else 'refused'}",
    )
    for spec, allowed in catalog.KEY_SPEC_USAGES.items()
    for usage in catalog.KEY_USAGES
]


@pytest.mark.parametrize(("key_spec", "key_usage", "allowed"), MATRIX)
def test_key_spec_usage_matrix(key_spec: str, key_usage: str, allowed: bool) -> None:
    files = {"app.yaml": key(f"key_spec: {key_spec}", f"key_usage: {key_usage}")}
    # a China Region for SM2 (only there), another for ML-KEM (not there)
    inventory = US_INVENTORY if key_spec in catalog.KEY_SPEC_EXCLUDED_REGIONS else CN_INVENTORY
    if allowed:
        state = only_key(desired_of(files, inventory=inventory)).state
        assert (state.key_spec, state.key_usage) == (key_spec, key_usage)
    else:
        assert_problems(
            problems_of(files, inventory=inventory),
            [
                (
                    f"{F}:4: keys[0].key_usage: ",
                    f"{key_usage} is not allowed for key_spec {key_spec} (allowed: ",
                )
            ],
        )


def test_matrix_covers_every_spec_and_usage() -> None:
    assert len(MATRIX) == len(catalog.KEY_SPEC_USAGES) * len(catalog.KEY_USAGES)
    assert sum(1 for p in MATRIX if p.values[2]) == sum(
        len(u) for u in catalog.KEY_SPEC_USAGES.values()
    )


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        case(
            "unknown-key-spec",
            ["key_spec: RSA_1024"],
            [(f"{F}:3: keys[0].key_spec: ", "'RSA_1024' is not a KMS key spec (one of")],
        ),
        case(
            "unknown-key-usage",
            ["key_usage: ENCRYPT"],
            [(f"{F}:3: keys[0].key_usage: ", "'ENCRYPT' is not a KMS key usage (one of")],
        ),
        case(
            "lower-case-key-spec",
            ["key_spec: rsa_2048", "key_usage: SIGN_VERIFY"],
            [(f"{F}:3: keys[0].key_spec: ", "'rsa_2048' is not a KMS key spec")],
        ),
        case(
            "rsa-without-usage",
            ["key_spec: RSA_2048"],
            [
                (
                    f"{F}:2: keys[0].key_usage: ",
                    "is required for key_spec RSA_2048 (one of ENCRYPT_DECRYPT, SIGN_VERIFY)",
                )
            ],
        ),
        case(
            "ecc-p256-without-usage",
            ["key_spec: ECC_NIST_P256"],
            [(f"{F}:2: keys[0].key_usage: ", "is required for key_spec ECC_NIST_P256")],
        ),
        case(
            "sm2-without-usage",
            ["key_spec: SM2"],
            [(f"{F}:2: keys[0].key_usage: ", "is required for key_spec SM2")],
        ),
    ],
)
def test_key_spec_and_usage_problems(fields: list[str], expected: Expected) -> None:
    assert_problems(problems_of({"app.yaml": key(*fields)}, inventory=CN_INVENTORY), expected)


@pytest.mark.parametrize(
    ("key_spec", "usage"),
    [
        case("symmetric-default", "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"),
        case("ed25519-sign-verify", "ECC_NIST_EDWARDS25519", "SIGN_VERIFY"),
        case("secp256k1-sign-verify", "ECC_SECG_P256K1", "SIGN_VERIFY"),
        case("hmac-generate-verify-mac", "HMAC_256", "GENERATE_VERIFY_MAC"),
        case("ml-dsa-sign-verify", "ML_DSA_65", "SIGN_VERIFY"),
        case("ml-kem-encapsulate-decapsulate", "ML_KEM_768", "ENCAPSULATE_DECAPSULATE"),
    ],
)
def test_key_usage_defaults_for_single_usage_specs(key_spec: str, usage: str) -> None:
    state = only_key(desired_of({"app.yaml": key(f"key_spec: {key_spec}")})).state
    assert state.key_usage == usage


def test_ml_kem_key_from_yaml_to_create_key_and_grants() -> None:
    # ML-KEM keys: KeyUsage ENCAPSULATE_DECAPSULATE only (CreateKey), grants for Encapsulate,
    # Decapsulate and GetPublicKey. moto 5.2.5 refuses ML_KEM_* key specs in CreateKey
    # (like ML_DSA_*, see moto-kms-notes.md), so the key is checked up to its CreateKey call.
    from reconciler.planner import make_plan
    from reconciler.state import ObservedTarget

    text = key(
        "key_spec: ML_KEM_1024",
        "grants:",
        "  - name: peer",
        "    grantee_principal: arn:aws:iam::{account_id}:role/Peer",
        "    operations: [Decapsulate, GetPublicKey]",
    )
    (desired,) = [dt for dt in desired_of({"app.yaml": text}) if dt.target.name == "prod"]
    (only,) = desired.keys
    assert (only.state.key_spec, only.state.key_usage) == ("ML_KEM_1024", "ENCAPSULATE_DECAPSULATE")
    plan = make_plan(desired, ObservedTarget(desired.target, keys=(), aliases={}))
    create = plan.operations[0].params
    assert (create["KeySpec"], create["KeyUsage"]) == ("ML_KEM_1024", "ENCAPSULATE_DECAPSULATE")
    refused = problems_of({"app.yaml": key("key_spec: ML_KEM_512", "key_usage: KEY_AGREEMENT")})
    assert_problems(
        refused,
        [
            (
                f"{F}:4: keys[0].key_usage: ",
                "KEY_AGREEMENT is not allowed for key_spec ML_KEM_512 "
                "(allowed: ENCAPSULATE_DECAPSULATE)",
            )
        ],
    )
    wrong_op = problems_of(
        {
            "app.yaml": key(
                "key_spec: ML_KEM_512",
                "grants:",
                "  - name: peer",
                "    grantee_principal: arn:aws:iam::{account_id}:role/Peer",
                "    operations: [Decrypt]",
            )
        }
    )
    assert len(wrong_op) == 1 and "Decrypt is not allowed on a ML_KEM_512" in wrong_op[0]


def test_ml_kem_is_not_available_in_china() -> None:
    # CreateKey, KeySpec: "The ML-KEM key specs are not available in China Regions."
    found = problems_of({"app.yaml": key("key_spec: ML_KEM_768")}, inventory=CN_INVENTORY)
    assert_problems(
        found,
        [
            (
                f"{F}:3: keys[0].key_spec: ",
                "ML_KEM_768 keys are not available in cn-north-1 (target 'china') (key 'app')",
            )
        ],
    )


def test_sm2_outside_china_names_each_target() -> None:
    found = problems_of({"app.yaml": key("key_spec: SM2", "key_usage: SIGN_VERIFY")})
    assert_problems(
        found,
        [
            (f"{F}:3: keys[0].key_spec: ", "not in us-east-1 (target 'prod') (key 'app')"),
            (f"{F}:3: keys[0].key_spec: ", "not in eu-west-1 (target 'dev') (key 'app')"),
        ],
    )
    assert "SM2 keys exist only in cn-north-1, cn-northwest-1" in found[0]


def test_sm2_only_in_the_non_china_target() -> None:
    inventory = (
        CN_INVENTORY + "  - name: dev\n    account_id: '444455556666'\n    region: eu-west-1\n"
    )
    assert_problems(
        problems_of(
            {"app.yaml": key("key_spec: SM2", "key_usage: SIGN_VERIFY")}, inventory=inventory
        ),
        [(f"{F}:3: keys[0].key_spec: ", "not in eu-west-1 (target 'dev')")],
    )


# -- rotation -------------------------------------------------------------------------------

ROTATION_REFUSED = "automatic rotation exists only for SYMMETRIC_DEFAULT keys with origin AWS_KMS"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        case(
            "enabled-on-rsa",
            ["key_spec: RSA_2048", "key_usage: SIGN_VERIFY", "rotation: {enabled: true}"],
            [(f"{F}:5: keys[0].rotation.enabled: ", f"{ROTATION_REFUSED}, not RSA_2048/AWS_KMS")],
        ),
        case(
            "enabled-on-hmac",
            ["key_spec: HMAC_512", "rotation:", "  enabled: true"],
            [(f"{F}:5: keys[0].rotation.enabled: ", "not HMAC_512/AWS_KMS")],
        ),
        case(
            "enabled-on-ecc",
            ["key_spec: ECC_NIST_P384", "key_usage: SIGN_VERIFY", "rotation: {enabled: true}"],
            [(f"{F}:5: keys[0].rotation.enabled: ", "not ECC_NIST_P384/AWS_KMS")],
        ),
        case(
            "enabled-on-external-origin",
            ["origin: EXTERNAL", "rotation: {enabled: true}"],
            [(f"{F}:4: keys[0].rotation.enabled: ", "not SYMMETRIC_DEFAULT/EXTERNAL")],
        ),
        case(
            "period-89",
            ["rotation:", "  enabled: true", "  period_days: 89"],
            [(f"{F}:5: keys[0].rotation.period_days: ", "must be between 90 and 2560 (key 'app')")],
        ),
        case(
            "period-2561",
            ["rotation: {enabled: true, period_days: 2561}"],
            [(f"{F}:3: keys[0].rotation.period_days: ", "must be between 90 and 2560")],
        ),
        case(
            "period-as-string",
            ["rotation:", "  period_days: '365'"],
            [(f"{F}:4: keys[0].rotation.period_days: ", "must be a whole number, not '365'")],
        ),
        case(
            "period-as-float",
            ["rotation:", "  period_days: 365.5"],
            [(f"{F}:4: keys[0].rotation.period_days: ", "must be a whole number, not 365.5")],
        ),
        case(
            "period-as-boolean",
            ["rotation:", "  period_days: true"],
            [
                (
                    f"{F}:4: keys[0].rotation.period_days: ",
                    "must be a whole number, not true (key 'app')",
                )
            ],
        ),
        case(
            "enabled-as-string-yes",
            ["rotation:", "  enabled: 'yes'"],
            [(f"{F}:4: keys[0].rotation.enabled: ", "must be true or false, not 'yes'")],
        ),
        case(
            "rotation-not-a-mapping",
            ["rotation: yearly"],
            [(f"{F}:3: keys[0].rotation: ", "must be a mapping")],
        ),
    ],
)
def test_rotation_problems(fields: list[str], expected: Expected) -> None:
    assert_problems(problems_of({"app.yaml": key(*fields)}), expected)


@pytest.mark.parametrize("period", [case("min-90", 90), case("max-2560", 2560), case("365", 365)])
def test_rotation_period_bounds_accepted(period: int) -> None:
    state = only_key(
        desired_of({"app.yaml": key(f"rotation: {{enabled: true, period_days: {period}}}")})
    ).state
    assert (state.rotation_enabled, state.rotation_period_days) == (True, period)


@pytest.mark.parametrize(
    ("defaults", "fields"),
    [
        case(
            "inventory-defaults-rsa",
            "defaults:\n  rotation: {enabled: true, period_days: 180}\n",
            ["key_spec: RSA_4096", "key_usage: ENCRYPT_DECRYPT"],
        ),
        case(
            "inventory-defaults-hmac",
            "defaults:\n  rotation: {enabled: true}\n",
            ["key_spec: HMAC_256"],
        ),
        case(
            "inventory-defaults-external",
            "defaults:\n  rotation: {enabled: true}\n",
            ["origin: EXTERNAL"],
        ),
        case(
            "target-defaults-ecc",
            "    defaults: {rotation: {enabled: true}}\n",
            ["key_spec: ECC_NIST_EDWARDS25519"],
        ),
    ],
)
def test_rotation_default_does_not_apply_to_keys_that_cannot_rotate(
    defaults: str, fields: list[str]
) -> None:
    desired = desired_of({"app.yaml": key(*fields)}, inventory=INVENTORY + defaults)
    for dt in desired:
        (dk,) = dt.keys
        assert dk.state.rotation_enabled is None, dt.target.name
        assert dk.state.rotation_period_days is None, dt.target.name


def test_rotation_merge_order() -> None:
    """inventory defaults < target defaults < the key's own fields."""
    inventory = (
        INVENTORY.replace(
            "    region: eu-west-1\n",
            "    region: eu-west-1\n    defaults: {rotation: {enabled: false}}\n",
        )
        + "defaults:\n  rotation: {enabled: true, period_days: 400}\n"
    )
    desired = desired_of(
        {"app.yaml": key() + "  - name: own\n    rotation: {enabled: true, period_days: 100}\n"},
        inventory=inventory,
    )
    got = {
        (dt.target.name, k.state.name): (k.state.rotation_enabled, k.state.rotation_period_days)
        for dt in desired
        for k in dt.keys
    }
    assert got == {
        ("prod", "app"): (True, 400),
        ("dev", "app"): (False, None),
        ("prod", "own"): (True, 100),
        ("dev", "own"): (True, 100),
    }


# -- deletion window ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "ok"),
    [case("6", 6, False), case("7", 7, True), case("30", 30, True), case("31", 31, False)],
)
def test_deletion_window_bounds(days: int, ok: bool) -> None:
    files = {"app.yaml": key("description: x", f"deletion_window_days: {days}")}
    if ok:
        assert only_key(desired_of(files)).deletion_window_days == days
    else:
        assert_problems(
            problems_of(files),
            [(f"{F}:4: keys[0].deletion_window_days: ", "must be between 7 and 30 (key 'app')")],
        )


def test_deletion_window_as_string() -> None:
    assert_problems(
        problems_of({"app.yaml": key("deletion_window_days: '30'")}),
        [(f"{F}:3: keys[0].deletion_window_days: ", "must be a whole number, not '30'")],
    )


# -- tags -----------------------------------------------------------------------------------

TAG_CHARS = "may contain only letters, digits, spaces and + - = . _ : / @"
K129 = "k" * 129


@pytest.mark.parametrize(
    ("tag_lines", "expected"),
    [
        case(
            "aws-prefix-lower",
            ["'aws:team': x"],
            [(f"{F}:4: keys[0].tags['aws:team']: ", "uses the prefix 'aws:', which AWS reserves")],
        ),
        case(
            "aws-prefix-upper",
            ["'AWS:team': x"],
            [(f"{F}:4: keys[0].tags['AWS:team']: ", "tag key 'AWS:team' uses the prefix 'aws:'")],
        ),
        case(
            "aws-prefix-mixed",
            ["'aWs:team': x"],
            [(f"{F}:4: keys[0].tags['aWs:team']: ", "uses the prefix 'aws:'")],
        ),
        case(
            "key-longer-than-128",
            [f"{K129}: x"],
            [(f"{F}:4: keys[0].tags.{K129}: ", "is 129 characters long; KMS allows at most 128")],
        ),
        case(
            "value-longer-than-256",
            ["Team: " + "v" * 257],
            [
                (
                    f"{F}:4: keys[0].tags.Team: ",
                    "the value is 257 characters long; KMS allows at most 256",
                )
            ],
        ),
        case(
            "empty-key", ["'': x"], [(f"{F}:4: keys[0].tags['']: ", "a tag key must not be empty")]
        ),
        case(
            "bad-character-in-key",
            ["'team#1': x"],
            [(f"{F}:4: keys[0].tags['team#1']: ", f"tag key 'team#1' {TAG_CHARS}")],
        ),
        case(
            "bad-character-in-value",
            ["Team: 'web!'"],
            [(f"{F}:4: keys[0].tags.Team: ", f"the value 'web!' {TAG_CHARS}")],
        ),
        case(
            "unquoted-number",
            ["Cost: 42"],
            [
                (
                    f"{F}:4: keys[0].tags.Cost: ",
                    "YAML reads the unquoted value 42 as a number: quote it (key 'app')",
                )
            ],
        ),
        case(
            "unquoted-float",
            ["Version: 1.10"],
            [
                (
                    f"{F}:4: keys[0].tags.Version: ",
                    "YAML reads the unquoted value 1.1 as a number: quote it (written as 1.10)",
                )
            ],
        ),
        case(
            "unquoted-boolean-no",
            ["Public: no"],
            [
                (
                    f"{F}:4: keys[0].tags.Public: ",
                    "YAML reads this unquoted value as the boolean false: quote it (written as no)",
                )
            ],
        ),
        case(
            "unquoted-boolean-true",
            ["Public: true"],
            [(f"{F}:4: keys[0].tags.Public: ", "as the boolean true: quote it (key 'app')")],
        ),
        case(
            "empty-value",
            ["Public:"],
            [(f"{F}:4: keys[0].tags.Public: ", "has no value: write '' for an empty value")],
        ),
        case(
            "identity-tag",
            ["'kms-reconciler:name': other"],
            [(f"{F}:4: keys[0].tags['kms-reconciler:name']: ", "is set by the tool itself")],
        ),
        case(
            "every-bad-tag-reported",
            ["'aws:a': x", "Good: fine", "Count: 1", "'c#': x"],
            [
                (f"{F}:4: keys[0].tags['aws:a']: ", "uses the prefix 'aws:'"),
                (f"{F}:6: keys[0].tags.Count: ", "as a number"),
                (f"{F}:7: keys[0].tags['c#']: ", TAG_CHARS),
            ],
        ),
        case(
            "51-tags",
            [f"T{i}: v" for i in range(51)],
            [(f"{F}:3: keys[0].tags: ", "has 51 tags; KMS allows at most 50 (key 'app')")],
        ),
    ],
)
def test_tag_problems(tag_lines: list[str], expected: Expected) -> None:
    assert_problems(
        problems_of({"app.yaml": key("tags:", *(f"  {t}" for t in tag_lines))}), expected
    )


@pytest.mark.parametrize(
    "tag_lines",
    [
        case("key-128-value-256", ["k" * 128 + ": " + "v" * 256]),
        case("50-tags", [f"T{i}: v" for i in range(50)]),
        case("allowed-characters", ["'Cost Center/Team_1+2=3.x:y@z-w': 'a b+c-d=e.f_g:h/i@j'"]),
        case("quoted-number-and-boolean", ["Cost: '42'", "Public: 'no'"]),
        case("empty-quoted-value", ["Note: ''"]),
        case("aws-inside-key", ["'team:aws:x': y"]),
    ],
)
def test_good_tags(tag_lines: list[str]) -> None:
    state = only_key(desired_of({"app.yaml": key("tags:", *(f"  {t}" for t in tag_lines))})).state
    assert len(state.tags) == len(tag_lines)


def test_51_tags_only_after_merging_defaults() -> None:
    inventory = INVENTORY + "defaults:\n  tags: {ManagedBy: kms-reconciler}\n"
    text = key("tags:", *(f"  T{i}: v" for i in range(50)))
    expected = (
        f"{F}:3: keys[0].tags: ",
        "after merging defaults: has 51 tags; KMS allows at most 50",
    )
    assert_problems(problems_of({"app.yaml": text}, inventory=inventory), [expected])


def test_51_tags_after_merging_target_defaults_only_in_that_target() -> None:
    inventory = INVENTORY + "    defaults: {tags: {Env: dev}}\n"
    text = key("tags:", *(f"  T{i}: v" for i in range(50)))
    assert_problems(
        problems_of({"app.yaml": text}, inventory=inventory),
        [(f"{F}:3: keys[0].tags: ", "after merging defaults: has 51 tags")],
    )


def test_key_tags_override_default_tags_without_counting_twice() -> None:
    inventory = INVENTORY + "defaults:\n  tags: {T0: default}\n"
    state = only_key(
        desired_of(
            {"app.yaml": key("tags:", *(f"  T{i}: v" for i in range(50)))}, inventory=inventory
        )
    ).state
    assert len(state.tags) == 50 and state.tags["T0"] == "v"


def test_identity_tag_in_inventory_defaults_is_reported_once_there() -> None:
    inventory = INVENTORY + "defaults:\n  tags:\n    'kms-reconciler:name': x\n"
    text = key() + "  - name: other\n"
    assert_problems(
        problems_of({"app.yaml": text}, inventory=inventory),
        [(f"{INV}:10: defaults.tags['kms-reconciler:name']: ", "is set by the tool itself")],
    )


def test_identity_tag_in_target_defaults_is_reported_there() -> None:
    inventory = INVENTORY + "    defaults: {tags: {'kms-reconciler:name': x}}\n"
    assert_problems(
        problems_of({"app.yaml": key()}, inventory=inventory),
        [
            (
                f"{INV}:8: targets[1].defaults.tags['kms-reconciler:name']: ",
                "is set by the tool itself",
            )
        ],
    )


def test_custom_identity_tag_is_the_one_refused() -> None:
    inventory = INVENTORY + "identity_tag: 'owner:name'\n"
    text = key("tags:", "  'kms-reconciler:name': fine-now", "  'owner:name': mine")
    assert_problems(
        problems_of({"app.yaml": text}, inventory=inventory),
        [
            (
                f"{F}:5: keys[0].tags['owner:name']: ",
                "the tag 'owner:name' is set by the tool itself",
            )
        ],
    )


# -- policy source --------------------------------------------------------------------------

ROOT_ONLY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
            "Action": "kms:*",
            "Resource": "*",
        }
    ],
}
ROOT_STATEMENT_YAML = (
    "      - {Effect: Allow, Principal: {AWS: 'arn:aws:iam::111122223333:root'}, "
    "Action: 'kms:*', Resource: '*'}"
)
GOOD_POLICIES: dict[str, str | dict[str, Any]] = {
    "p.json.j2": '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", '
    '"Principal": {"AWS": "arn:{{ partition }}:iam::{{ account_id }}:root"}, '
    '"Action": "kms:*", "Resource": "*"}]}\n',
    "root.json": ROOT_ONLY,
}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        case(
            "no-source",
            ["policy:", "  vars: {a: 1}"],
            [
                (
                    f"{F}:3: keys[0].policy: ",
                    "give exactly one of 'template', 'document' or 'file' (key 'app')",
                )
            ],
        ),
        case(
            "empty-policy-mapping",
            ["policy: {}"],
            [(f"{F}:3: keys[0].policy: ", "give exactly one of 'template', 'document' or 'file'")],
        ),
        case(
            "template-and-file",
            ["policy:", "  template: p.json.j2", "  file: root.json"],
            [
                (
                    f"{F}:3: keys[0].policy: ",
                    "give exactly one of 'template', 'document' or 'file' (found template, file)",
                )
            ],
        ),
        case(
            "file-and-document",
            ["policy:", "  file: root.json", "  document: {Version: '2012-10-17'}"],
            [(f"{F}:3: keys[0].policy: ", "(found document, file)")],
        ),
        case(
            "vars-without-template",
            ["policy:", "  file: root.json", "  vars: {admin_roles: [Admin]}"],
            [(f"{F}:3: keys[0].policy: ", "'vars' goes with 'template' only")],
        ),
        case(
            "template-not-found",
            ["description: x", "policy:", "  template: missing.json.j2"],
            [
                (
                    f"{F}:5: keys[0].policy.template: ",
                    "policy template 'missing.json.j2' not found in keyspecs/policies (key 'app')",
                )
            ],
        ),
        case(
            "file-not-found",
            ["policy:", "  file: missing.json"],
            [
                (
                    f"{F}:4: keys[0].policy.file: ",
                    "policy file 'missing.json' not found in keyspecs/policies",
                )
            ],
        ),
        case(
            "file-escaping-with-dotdot",
            ["policy:", "  file: ../inventory.yaml"],
            [
                (
                    f"{F}:4: keys[0].policy.file: ",
                    "policy file '../inventory.yaml' must be a path inside keyspecs/policies/",
                )
            ],
        ),
        case(
            "file-escaping-inside-then-out",
            ["policy:", "  file: sub/../../app.yaml"],
            [(f"{F}:4: keys[0].policy.file: ", "must be a path inside keyspecs/policies/")],
        ),
        case(
            "file-absolute-path",
            ["policy:", "  file: /etc/hostname"],
            [
                (
                    f"{F}:4: keys[0].policy.file: ",
                    "policy file '/etc/hostname' must be a path inside",
                )
            ],
        ),
        case(
            "template-escaping-with-dotdot",
            ["policy:", "  template: ../app.yaml"],
            [
                (
                    f"{F}:4: keys[0].policy.template: ",
                    "policy template '../app.yaml' must be a path inside",
                )
            ],
        ),
        case(
            "file-is-not-json",
            ["policy:", "  file: bad.json"],
            [("keyspecs/policies/bad.json:3: key 'app': ", "rendered policy is not valid JSON")],
        ),
    ],
)
def test_policy_source_problems(fields: list[str], expected: Expected) -> None:
    policies = {
        **GOOD_POLICIES,
        "bad.json": '{\n  "Version": "2012-10-17",\n  "Statement": [,]\n}\n',
    }
    assert_problems(problems_of({"app.yaml": key(*fields)}, policies=policies), expected)


@pytest.mark.parametrize(
    "fields",
    [
        case("template", ["policy: {template: p.json.j2}"]),
        case("file", ["policy: {file: root.json}"]),
        case("file-in-subfolder", ["policy: {file: team/root.json}"]),
        case(
            "document",
            [
                "policy:",
                "  document:",
                "    Version: '2012-10-17'",
                "    Statement:",
                ROOT_STATEMENT_YAML,
            ],
        ),
    ],
)
def test_good_policy_sources(fields: list[str]) -> None:
    desired = desired_of(
        {"app.yaml": key(*fields)}, policies={**GOOD_POLICIES, "team/root.json": ROOT_ONLY}
    )
    assert only_key(desired).state.policy["Statement"][0]["Action"] == "kms:*"


def test_policy_file_symlink_out_of_policies_is_refused() -> None:
    root = write_inventory({"app.yaml": key("policy:", "  file: link.json")})
    secret = Path("secret.json").resolve()
    secret.write_text(json.dumps(ROOT_ONLY), encoding="utf-8")
    os.symlink(secret, root / "policies" / "link.json")
    with pytest.raises(InputError) as info:
        build_desired(load_inventory(root), load_inventory(root).settings.targets)
    assert_problems(
        [str(p) for p in info.value.problems],
        [(f"{F}:4: keys[0].policy.file: ", "policy file 'link.json' must be a path inside")],
    )


def test_policy_template_from_inventory_defaults_is_reported_there() -> None:
    inventory = INVENTORY + "defaults:\n  policy: {template: missing.json.j2}\n"
    assert_problems(
        problems_of({"app.yaml": key() + "  - name: other\n"}, inventory=inventory),
        [(f"{INV}:9: defaults.policy.template: ", "policy template 'missing.json.j2' not found")],
    )


def test_policy_from_target_defaults_is_used_and_blamed_there() -> None:
    inventory = INVENTORY + "    defaults: {policy: {file: missing.json}}\n"
    assert_problems(
        problems_of({"app.yaml": key()}, inventory=inventory),
        [(f"{INV}:8: targets[1].defaults.policy.file: ", "policy file 'missing.json' not found")],
    )


def test_no_policy_means_the_default_root_policy() -> None:
    desired = desired_of({"app.yaml": key()})
    for dt in desired:
        statement = dt.keys[0].state.policy["Statement"][0]
        assert statement["Principal"] == {"AWS": f"arn:aws:iam::{dt.target.account_id}:root"}


# -- templates ------------------------------------------------------------------------------

T = "keyspecs/policies/t.json.j2"
TEMPLATE_KEY = key("policy:", "  template: t.json.j2", "  vars: {roles: [a, b]}")
STATEMENT = json.dumps(ROOT_ONLY["Statement"][0])


def policy_with(*statements: str) -> str:
    return (
        '{\n  "Version": "2012-10-17",\n  "Statement": [\n    '
        + ",\n    ".join(statements)
        + "\n  ]\n}\n"
    )


@pytest.mark.parametrize(
    ("templates", "expected"),
    [
        case(
            "syntax-error",
            {"t.json.j2": '{\n  "Version": "2012-10-17",\n  "Id": "{{ account_id }"\n}\n'},
            [(f"{T}:3: key 'app': ", "template syntax error: unexpected '}'")],
        ),
        case(
            "syntax-error-unclosed-block",
            # Jinja names the line of the last text before the end of the template.
            {"t.json.j2": "{% for r in vars.roles %}\n{\n}\n"},
            [(f"{T}:2: key 'app': ", "template syntax error: Unexpected end of template")],
        ),
        case(
            "syntax-error-in-included-template",
            {"t.json.j2": "{\n{% include 'part.j2' %}\n}\n", "part.j2": "\n\n{{ oops }\n"},
            [("keyspecs/policies/part.j2:3: key 'app': ", "template syntax error")],
        ),
        case(
            "undefined-variable",
            {"t.json.j2": '{\n  "Version": "2012-10-17",\n  "Id": "{{ acount_id }}"\n}\n'},
            [(f"{T}:3: key 'app': ", "undefined template variable: 'acount_id' is undefined")],
        ),
        case(
            "undefined-var-field",
            {"t.json.j2": '{\n  "Version": "2012-10-17",\n\n  "Id": "{{ vars.admin_roles }}"\n}\n'},
            [
                (
                    f"{T}:4: key 'app': ",
                    "undefined template variable: 'dict object' has no attribute 'admin_roles'",
                )
            ],
        ),
        case(
            "undefined-in-loop-body",
            {"t.json.j2": "{% for r in vars.roles %}\n\n{{ r.name }}\n{% endfor %}\n"},
            [(f"{T}:3: key 'app': ", "undefined template variable")],
        ),
        case(
            "undefined-in-imported-macro",
            {
                "t.json.j2": "{% import 'm.j2' as m %}\n{\n{{ m.f() }}\n}\n",
                "m.j2": "{% macro f() %}\n\n{{ nope }}\n{% endmacro %}\n",
            },
            [("keyspecs/policies/m.j2:3: key 'app': ", "'nope' is undefined")],
        ),
        case(
            "included-template-missing",
            {"t.json.j2": "{\n{% include 'missing.j2' %}\n}\n"},
            [(f"{T}:2: key 'app': ", "template 'missing.j2' (included or imported) not found")],
        ),
        case(
            "include-escaping-policies",
            {"t.json.j2": "{\n\n{% include '../app.yaml' %}\n}\n"},
            [(f"{T}:3: key 'app': ", "template '../app.yaml' (included or imported) not found")],
        ),
        case(
            "division-by-zero",
            {"t.json.j2": "{\n\n{{ 1 / 0 }}\n}\n"},
            [(f"{T}:3: key 'app': ", "template error: division by zero")],
        ),
        case(
            "endless-recursion",
            {"t.json.j2": "{% macro f() %}{{ f() }}{% endmacro %}\n{{ f() }}\n"},
            [(f"{T}:1: key 'app': ", "recursion too deep")],
        ),
        case(
            "huge-range",
            {"t.json.j2": "\n{{ range(10 ** 9) | list | length }}\n"},
            [(f"{T}:2: key 'app': ", "a number above 100000 passed to range")],
        ),
        case(
            "rendered-not-json-trailing-comma",
            {
                "t.json.j2": '{#- header\n   comment -#}\n{\n  "Version": "2012-10-17",\n'
                '  "Statement": [\n{% for r in vars.roles %}\n    ' + STATEMENT + ",\n"
                "{% endfor %}\n  ]\n}\n"
            },
            # The error is at the template's line 9 ("  ]"), the rendered text's line 6.
            [
                (
                    f"{T}:9: key 'app': ",
                    "rendered policy is not valid JSON: "
                    "Expecting value at rendered line 6, column 3: ']'",
                )
            ],
        ),
        case(
            "rendered-not-json-missing-comma",
            {
                "t.json.j2": "{#- one\n two\n three -#}\n"
                '{\n  "Version": "2012-10-17"\n  "Statement": []\n}\n'
            },
            [(f"{T}:6: key 'app': ", "Expecting ',' delimiter at rendered line 3")],
        ),
        case(
            "rendered-not-json-from-expression",
            {
                "t.json.j2": "{#- h -#}\n"
                '{\n  "Version": "2012-10-17",\n  "Id": {{ vars.roles }}\n}\n'
            },
            [(f"{T}:4: key 'app': ", "rendered policy is not valid JSON")],
        ),
        case(
            "rendered-empty",
            {"t.json.j2": "{#- nothing -#}\n{% if false %}{}{% endif %}\n"},
            [(f"{T}:", "rendered policy is empty")],
        ),
        case(
            "rendered-json-array",
            {"t.json.j2": "[\n" + STATEMENT + "\n]\n"},
            [(f"{T}:1: key 'app': ", "rendered policy is not a JSON object (it is a JSON array)")],
        ),
        case(
            "rendered-json-string",
            {"t.json.j2": '{#- h -#}\n\n"policy"\n'},
            [(f"{T}:3: key 'app': ", "not a JSON object (it is a JSON string)")],
        ),
        case(
            "statement-missing-effect",
            {"t.json.j2": policy_with('{"Principal": "*", "Action": "kms:*", "Resource": "*"}')},
            [(f"{F}:3: keys[0].policy: ", f"Statement[0]: missing Effect (from {T}) (key 'app')")],
        ),
        case(
            "statement-missing-principal",
            {
                "t.json.j2": policy_with(
                    STATEMENT,
                    '{"Sid": "Use", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"}',
                )
            },
            [(f"{F}:3: keys[0].policy: ", "Statement[1] (Sid 'Use'): missing Principal")],
        ),
        case(
            "statement-missing-action",
            {"t.json.j2": policy_with('{"Effect": "Allow", "Principal": "*", "Resource": "*"}')},
            [(f"{F}:3: keys[0].policy: ", "Statement[0]: missing Action")],
        ),
        case(
            "statement-missing-resource",
            {"t.json.j2": policy_with('{"Effect": "Allow", "Principal": "*", "Action": "kms:*"}')},
            [(f"{F}:3: keys[0].policy: ", "Statement[0]: missing Resource")],
        ),
        case(
            "statement-missing-everything",
            {"t.json.j2": policy_with("{}")},
            [
                (f"{F}:3: keys[0].policy: ", "Statement[0]: missing Effect"),
                (f"{F}:3: keys[0].policy: ", "Statement[0]: missing Principal"),
                (f"{F}:3: keys[0].policy: ", "Statement[0]: missing Action"),
                (f"{F}:3: keys[0].policy: ", "Statement[0]: missing Resource"),
            ],
        ),
        case(
            "policy-over-32768-bytes",
            {
                "t.json.j2": policy_with(
                    *(STATEMENT.replace('"Effect"', f'"Sid": "S{i}", "Effect"') for i in range(200))
                )
            },
            [
                (
                    f"{F}:3: keys[0].policy: ",
                    "bytes; KMS allows at most 32768 (from keyspecs/policies/t.json.j2)",
                )
            ],
        ),
    ],
)
def test_template_problems(templates: dict[str, str], expected: Expected) -> None:
    assert_problems(problems_of({"app.yaml": TEMPLATE_KEY}, policies=templates), expected)


SANDBOX_ESCAPES = [
    case("subclasses-via-mro", "{{ ''.__class__.__mro__[1].__subclasses__() }}"),
    case("cycler-globals-os", "{{ cycler.__init__.__globals__.os.system('touch PWNED') }}"),
    case("lipsum-globals-os", "{{ lipsum.__globals__['os'].popen('touch PWNED').read() }}"),
    case("joiner-globals", "{{ joiner.__init__.__globals__ }}"),
    case("namespace-class", "{{ namespace.__class__.__base__.__subclasses__() }}"),
    case("attr-filter", "{{ (''|attr('__class__')).__mro__ }}"),
    case("format-string", "{{ '{0.__class__.__mro__}'.format('') }}"),
    # str.format reached through |attr: jinja2 below 3.1.6 let it through (CVE-2025-27516)
    case("format-via-attr", "{{ ('{0.__class__.__mro__}'|attr('format'))('') }}"),
    case("vars-dunder", "{{ vars.__class__.__init__.__globals__ }}"),
    case("request-self", "{{ self.__init__.__globals__.__builtins__.open('PWNED', 'w') }}"),
]


@pytest.mark.parametrize("payload", SANDBOX_ESCAPES)
def test_sandbox_escape_is_refused_and_never_executed(payload: str) -> None:
    template = '{\n  "Version": "2012-10-17",\n  "Id": "' + payload + '"\n}\n'
    found = problems_of({"app.yaml": TEMPLATE_KEY}, policies={"t.json.j2": template})
    assert_problems(
        found, [(f"{T}:3: key 'app': ", "unsafe template code refused by the sandbox: ")]
    )
    assert not Path("PWNED").exists() and not Path(ROOT, "PWNED").exists()


def test_inline_document_problem_points_at_the_statement() -> None:
    text = key(
        "policy:",
        "  document:",
        "    Version: '2012-10-17'",
        "    Statement:",
        ROOT_STATEMENT_YAML,
        "      - Effect: Maybe",
        "        Principal: '*'",
        "        Action: 'kms:Decrypt'",
    )
    assert_problems(
        problems_of({"app.yaml": text}),
        [
            (
                f"{F}:8: keys[0].policy.document: ",
                "Statement[1]: Effect must be 'Allow' or 'Deny', not 'Maybe'",
            ),
            (f"{F}:8: keys[0].policy.document: ", "Statement[1]: missing Resource"),
        ],
    )


def test_template_errors_are_reported_for_every_key_that_uses_it() -> None:
    text = TEMPLATE_KEY + "  - name: other\n    policy: {template: t.json.j2}\n"
    found = problems_of({"app.yaml": text}, policies={"t.json.j2": "{\n{{ nope }}\n}\n"})
    assert_problems(
        found,
        [
            (f"{T}:2: key 'app': ", "'nope' is undefined"),
            (f"{T}:2: key 'other': ", "'nope' is undefined"),
        ],
    )


# -- key files and YAML ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        case(
            "unknown-target-in-key",
            {"app.yaml": key("targets: [prod, qa]")},
            [
                (
                    f"{F}:3: keys[0].targets[1]: ",
                    "unknown target 'qa' (targets: dev, prod) (key 'app')",
                )
            ],
        ),
        case(
            "unknown-target-block-list",
            {"app.yaml": key("targets:", "  - prod", "  - staging")},
            [(f"{F}:5: keys[0].targets[1]: ", "unknown target 'staging'")],
        ),
        case(
            "yaml-syntax-error-flow-mapping",
            {"app.yaml": key("tags: {Team: web", "description: x")},
            [
                (
                    f"{F}:4: ",
                    "invalid YAML: expected ',' or '}', but got ':' "
                    "(while parsing a flow mapping that starts on line 3)",
                )
            ],
        ),
        case(
            "yaml-syntax-error-bad-indent",
            {"app.yaml": "keys:\n  - name: app\n   description: x\n"},
            [(f"{F}:3: ", "invalid YAML")],
        ),
        case(
            "yaml-tab-indent",
            {"app.yaml": "keys:\n  - name: app\n\tdescription: x\n"},
            [(f"{F}:3: ", "invalid YAML")],
        ),
        case(
            "duplicate-mapping-key",
            {"app.yaml": key("description: one", "enabled: true", "description: two")},
            [
                (
                    f"{F}:5: keys[0].description: ",
                    "'description' appears twice in the same mapping (first on line 3) (key 'app')",
                )
            ],
        ),
        case(
            "duplicate-mapping-key-in-tags",
            {"app.yaml": key("tags:", "  Team: a", "  Team: b")},
            [
                (
                    f"{F}:5: keys[0].tags.Team: ",
                    "'Team' appears twice in the same mapping (first on line 4)",
                )
            ],
        ),
        case(
            "duplicate-top-level-keys",
            {"app.yaml": "keys: []\nkeys:\n  - name: app\n"},
            [(f"{F}:2: keys: ", "'keys' appears twice")],
        ),
        case("empty-key-file", {"app.yaml": ""}, [(f"{F}:1: ", "the file is empty")]),
        case(
            "comment-only-key-file",
            {"app.yaml": "# nothing yet\n"},
            [(f"{F}:1: ", "the file is empty")],
        ),
        case(
            "no-top-level-keys",
            {"app.yaml": "key:\n  - name: app\n"},
            [(f"{F}:1: ", "expected a top-level 'keys:' list")],
        ),
        case(
            "key-file-is-a-list",
            {"app.yaml": "- name: app\n"},
            [(f"{F}:1: ", "expected a top-level 'keys:' list")],
        ),
        case(
            "keys-is-empty-value",
            {"app.yaml": "keys:\n"},
            [(f"{F}:1: keys: ", "must be a list, not an empty value")],
        ),
        case(
            "yml-extension-and-subfolder",
            {"team/app.yml": "keys:\n  - name: app\n    colour: red\n"},
            [("keyspecs/team/app.yml:3: keys[0].colour: ", "unknown field")],
        ),
        case(
            "yaml-files-under-policies-and-hidden-dirs-ignored",
            {
                "policies/notes.yaml": "not: keys\n",
                ".cache/x.yaml": "not: keys\n",
                "app.yaml": key(),
            },
            [],
        ),
    ],
)
def test_key_file_problems(files: dict[str, str], expected: Expected) -> None:
    assert_problems(problems_of(files), expected)


# -- everything at once ---------------------------------------------------------------------


def test_every_mistake_across_files_is_reported_in_one_error() -> None:
    files = {
        "app.yaml": key("colour: red", "rotation: {period_days: 10}", "tags: {Cost: 42}")
        + "  - name: Bad_Name\n"
        + "  - name: rsa\n    key_spec: RSA_2048\n",
        "data/platform.yaml": key("deletion_window_days: 31", "aliases: [alias/aws/x]", name="logs")
        + "  - name: logs2\n    targets: [qa]\n",
        "broken.yaml": "keys:\n  - name: x\n    tags: {a: b\n",
        "empty.yaml": "",
    }
    root = write_inventory(files)
    with pytest.raises(InputError) as info:
        load_inventory(root)
    found = [str(p) for p in info.value.problems]
    assert_problems(
        found,
        [
            (f"{F}:3: keys[0].colour: ", "unknown field"),
            (f"{F}:4: keys[0].rotation.period_days: ", "must be between 90 and 2560"),
            (f"{F}:5: keys[0].tags.Cost: ", "as a number"),
            (f"{F}:6: keys[1].name: ", "'Bad_Name' is not a valid name"),
            (f"{F}:7: keys[2].key_usage: ", "is required for key_spec RSA_2048"),
            ("keyspecs/broken.yaml:4: ", "invalid YAML"),
            ("keyspecs/data/platform.yaml:3: keys[0].deletion_window_days: ", "between 7 and 30"),
            ("keyspecs/data/platform.yaml:4: keys[0].aliases[0]: ", "alias/aws/"),
            ("keyspecs/empty.yaml:1: ", "the file is empty"),
            # a key with a mistake is left out, its valid neighbours are still checked
            ("keyspecs/data/platform.yaml:6: keys[1].targets[0]: ", "unknown target 'qa'"),
        ],
    )
    assert len(info.value.problems) == 10
    assert all(str(p) in str(info.value) for p in info.value.problems)


def test_every_template_problem_is_reported_in_one_error() -> None:
    text = (
        key("policy: {template: syntax.json.j2}", name="one")
        + "  - name: two\n    policy: {template: undefined.json.j2}\n"
        + "  - name: three\n    policy: {template: missing.json.j2}\n"
        + "  - name: four\n    policy: {file: bad.json}\n"
        + "  - name: five\n    key_spec: SM2\n    key_usage: SIGN_VERIFY\n"
    )
    policies = {
        "syntax.json.j2": "{{ x }\n",
        "undefined.json.j2": "{{ x }}\n",
        "bad.json": "[]",
    }
    found = problems_of({"app.yaml": text}, policies=policies)
    # A template problem is the same in both targets and is reported once per key; the SM2
    # key is wrong in each target, and says which.
    assert_problems(
        found,
        [
            ("keyspecs/policies/syntax.json.j2:1: key 'one': ", "template syntax error"),
            ("keyspecs/policies/undefined.json.j2:1: key 'two': ", "'x' is undefined"),
            (f"{F}:7: keys[2].policy.template: ", "'missing.json.j2' not found"),
            ("keyspecs/policies/bad.json:1: key 'four': ", "not a JSON object"),
            (f"{F}:11: keys[4].key_spec: ", "(target 'prod') (key 'five')"),
            (f"{F}:11: keys[4].key_spec: ", "(target 'dev') (key 'five')"),
        ],
    )


# -- the command line -----------------------------------------------------------------------

BAD = {
    "app.yaml": key("rotation: {period_days: 10}", "tags: {Public: no}")
    + "  - name: other\n    aliases: [no-prefix]\n"
}


@pytest.fixture
def aws_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every AWS request the code attempts (botocore API calls), recorded under moto so that
    none can leave the machine; the test asserts on the list."""
    from moto import mock_aws

    calls: list[str] = []
    real = botocore.client.BaseClient._make_api_call

    def counting(self: Any, operation: str, params: Any) -> Any:
        calls.append(f"{self.meta.service_model.service_name}.{operation}")
        return real(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counting)
    with mock_aws():
        yield calls


def test_validate_prints_every_problem_on_stderr_and_exits_1(aws_calls: list[str]) -> None:
    expected = problems_of(BAD)
    assert len(expected) == 3
    result = CliRunner().invoke(main, ["validate", ROOT])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert result.stdout == ""
    assert result.stderr.splitlines() == [f"error: {line}" for line in expected]
    assert aws_calls == []


def test_plan_on_invalid_inventory_makes_no_aws_call(
    aws_calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write_inventory(BAD)

    def no_connect(*args: Any, **kwargs: Any) -> Any:
        aws_calls.append("connect")
        raise AssertionError("connect() called for an invalid inventory")

    monkeypatch.setattr("reconciler.aws.connect", no_connect)
    monkeypatch.setattr("reconciler.aws.connect", no_connect)
    result = CliRunner().invoke(main, ["plan", ROOT])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert aws_calls == []
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 3
    assert "keys[0].rotation.period_days" in result.stderr


def test_plan_on_valid_inventory_does_reach_aws(aws_calls: list[str]) -> None:
    """The control for the test above: the same hook sees the calls a valid plan makes."""
    write_inventory({"app.yaml": key()})
    result = CliRunner().invoke(main, ["plan", ROOT])
    assert aws_calls and aws_calls[0] == "sts.GetCallerIdentity", result.output
    # moto's account is not the target's: the run stops before any KMS call.
    assert result.exit_code == 1
    assert "belong to account" in result.stderr
    assert not any(call.startswith("kms.") for call in aws_calls)


def test_validate_on_the_bundled_keyspecs_exits_0(aws_calls: list[str]) -> None:
    result = CliRunner().invoke(main, ["validate", str(REPO / "keyspecs")])
    assert result.exit_code == 0, result.output
    assert "valid." in result.stdout
    assert result.stderr == ""
    assert aws_calls == []


def test_validate_on_a_valid_tmp_inventory_exits_0() -> None:
    write_inventory({"app.yaml": key()})
    result = CliRunner().invoke(main, ["validate", ROOT])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("keyspecs: valid. 1 key spec(s), 2 key(s) across 2 target(s)")


def test_validate_on_template_problems_exits_1() -> None:
    write_inventory({"app.yaml": TEMPLATE_KEY}, policies={"t.json.j2": "{{ x }\n"})
    result = CliRunner().invoke(main, ["validate", ROOT])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: {T}:1: key 'app': template syntax error: unexpected '}}'"
    ]


def test_a_key_field_error_does_not_hide_its_cross_field_errors() -> None:
    # grant operations are checked against the key type only once every field is valid;
    # a mistake elsewhere in the key must not hide a wrong grant (every problem at once)
    files = {
        "app.yaml": key(
            "rotation: {enabled: true, period_days: 10}",
            "grants:\n      - {name: g, grantee_principal: 'arn:aws:iam::111122223333:role/A', "
            "operations: [Sign]}",
        ),
        # a wrong key_spec decides what the grants may be: nothing is guessed from a default
        "other.yaml": key(
            "key_spec: RSA_9999",
            "grants:\n      - {name: g, grantee_principal: 'arn:aws:iam::111122223333:role/A', "
            "operations: [Sign]}",
            name="signer",
        ),
    }
    found = [str(p) for p in problems_of(files)]
    assert_problems(
        found,
        [
            (f"{F}:3: keys[0].rotation.period_days: ", "must be between 90 and 2560"),
            (f"{F}:5: keys[0].grants[0].operations[0]: ", "Sign is not allowed"),
            ("keyspecs/other.yaml:3: keys[0].key_spec: ", "RSA_9999"),
        ],
    )
