"""JSON Schemas for editors (``kms-reconciler schema``): generated from the models, committed
under schemas/ and named by every sample, example and the ``init`` scaffold, all valid
against them; what a schema rejects, the loader rejects too, and for the mistakes a schema
can express the two agree (generated inputs)."""

from __future__ import annotations

import contextlib
import copy
import json
import random
from datetime import date, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from reconciler import schema
from reconciler.cli import main
from reconciler.errors import InputError
from reconciler.loader import load_inventory
from reconciler.scaffold import scaffold

REPO = Path(__file__).resolve().parent.parent
SAMPLES = sorted(p for base in ("keyspecs", "examples") for p in (REPO / base).rglob("*.yaml"))
SCHEMA_OF = {"inventory.yaml": "inventory.schema.json"}  # every other YAML file holds keys
INVENTORY = {"targets": [{"name": "prod", "account_id": "111122223333", "region": "us-east-1"}]}
VALID_KEY: dict[str, Any] = {
    "name": "app-data",
    "description": "data key",
    "key_spec": "SYMMETRIC_DEFAULT",
    "key_usage": "ENCRYPT_DECRYPT",
    "aliases": ["alias/app-data"],
    "rotation": {"enabled": True, "period_days": 365},
    "deletion_window_days": 30,
    "tags": {"Owner": "team"},
}


def as_json(value: Any) -> Any:
    """YAML as an editor's YAML 1.2 schema reads it: dates stay strings."""
    if isinstance(value, dict):
        return {str(k): as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_json(v) for v in value]
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value


def validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema.schemas()[name])


def test_the_committed_schemas_are_the_generated_ones() -> None:
    for name, document in schema.schemas().items():
        committed = (REPO / "schemas" / name).read_text(encoding="utf-8")
        assert committed == schema.dumps(document), (
            f"schemas/{name} is stale: run kms-reconciler schema --out schemas"
        )
        jsonschema.Draft202012Validator.check_schema(document)


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_sample_names_its_schema_and_is_valid_against_it(path: Path) -> None:
    name = SCHEMA_OF.get(path.name, "keyfile.schema.json")
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# yaml-language-server: $schema=") and first.endswith(name)
    target = (path.parent / first.split("=", 1)[1]).resolve()
    assert target == (REPO / "schemas" / name).resolve()
    errors = list(validator(name).iter_errors(as_json(yaml.safe_load(path.read_text()))))
    assert errors == [], [e.message for e in errors]


def test_the_init_scaffold_is_valid_against_the_schemas_it_writes(tmp_path: Path) -> None:
    written = scaffold(tmp_path / "keyspecs")
    samples = [p for p in written if p.suffix == ".yaml"]
    assert sorted(p.name for p in samples) == ["app.yaml", "inventory.yaml"]
    for path in samples:
        name = SCHEMA_OF.get(path.name, "keyfile.schema.json")
        first = path.read_text(encoding="utf-8").splitlines()[0]
        target = path.parent / first.removeprefix("# yaml-language-server: $schema=")
        assert target.read_text(encoding="utf-8") == (REPO / "schemas" / name).read_text()
        check = jsonschema.Draft202012Validator(json.loads(target.read_text(encoding="utf-8")))
        errors = list(check.iter_errors(as_json(yaml.safe_load(path.read_text()))))
        assert errors == [], (path.name, [e.message for e in errors])


def test_schema_command_prints_or_writes_both(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["schema"])
    assert result.exit_code == 0
    assert set(json.loads(result.stdout)) == set(schema.FILES)
    written = CliRunner().invoke(main, ["schema", "--out", str(tmp_path / "s")])
    assert written.exit_code == 0
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == sorted(schema.FILES)


# -- what the schema rejects, the loader rejects too ---------------------------------------
#
# A seeded generator mutates valid key files and inventory files, one category of mistake
# per input. For every input: when the schema rejects it, the loader must reject it too.
# For the categories the schema expresses (SCHEMA_CATEGORIES) the two must agree both ways,
# boundary values included (the generator mixes in values that are just valid). The
# categories in LOADER_ONLY are the rules the models keep in validators (see the docstring
# of reconciler.spec): the schema accepts those inputs and only the loader refuses them.
#
# Not generated, because Python's `re` (which jsonschema uses) and the editors' ECMA
# regexes differ from the loader there, always in the direction "the loader rejects more":
# a whole number written as 30.0 (JSON Schema's "integer" takes it; flags and numbers are
# strict in the loader), a trailing newline after a name or alias (`$` in a searched
# pattern matches before it; the loader matches whole strings), and non-ASCII letters in
# tags (`\w` is ASCII-only in ECMA, so editors reject what KMS and the loader accept).

VALID_INVENTORY: dict[str, Any] = {
    "identity_tag": "kms-reconciler:name",
    "targets": [
        {
            "name": "prod",
            "account_id": "111122223333",
            "region": "us-east-1",
            "role_arn": "arn:aws:iam::111122223333:role/kms-reconciler",
            "session_name": "kms-ci",
            "session_duration_seconds": 3600,
            "defaults": {"deletion_window_days": 30},
        },
        {"name": "stage", "account_id": "444455556666", "region": "eu-west-1"},
    ],
    "defaults": {"tags": {"ManagedBy": "kms-reconciler"}, "rotation": {"enabled": True}},
    "ignore": [{"alias": "alias/legacy-*"}],
    "trusted_accounts": ["777788889999"],
    "organization_ids": ["o-a1b2c3d4e5"],
    "request_quotas": {"CreateKey": 5},
}
VALID_KEYS: list[dict[str, Any]] = [
    VALID_KEY,
    {
        "name": "signer",
        "targets": ["prod"],
        "key_spec": "RSA_2048",
        "key_usage": "SIGN_VERIFY",
        "aliases": ["alias/signer"],
        "rotation": {"enabled": False},
        "grants": [
            {
                "name": "ci-sign",
                "grantee_principal": "arn:aws:iam::{account_id}:role/ci",
                "operations": ["Sign", "GetPublicKey"],
            }
        ],
    },
    {
        "name": "global",
        "multi_region": True,
        "replicas": [{"region": "eu-west-1", "aliases": ["alias/global-eu"]}],
        "grants": [
            {
                "name": "app",
                "grantee_principal": "arn:aws:iam::111122223333:role/app",
                "operations": ["Decrypt"],
                "constraints": {"encryption_context_equals": {"app": "web"}},
            }
        ],
    },
    {
        "name": "imported",
        "origin": "EXTERNAL",
        "rotation": {"enabled": False},
        "key_material": {"env": "IMPORTED_KEY"},
    },
]

Path_ = tuple[str | int, ...]
# (where, values): a value that is just valid keeps the two sides honest about boundaries.
Mutation = tuple[Path_, list[Any]]
DELETE = object()  # the value that removes the field


def _every_key(*rest: str | int) -> list[Path_]:
    return [("keys", i, *rest) for i in range(len(VALID_KEYS))]


KEY_MUTATIONS: dict[str, list[Mutation]] = {
    "enum": [
        *[
            (path, ["RSA_1024", "symmetric_default", "AWS", "", "rsa_2048"])
            for path in _every_key("key_spec")
        ],
        (("keys", 0, "key_usage"), ["ENCRYPT", "encrypt_decrypt", "SIGN"]),
        (("keys", 3, "origin"), ["AWS_CLOUDHSM", "EXTERNAL_KEY_STORE", "external"]),
        (("keys", 1, "grants", 0, "operations", 0), ["Decrpyt", "sign", "kms:Sign"]),
        (("keys", 3, "key_material", "expiration_model"), ["SOMETIMES", "NEVER"]),
    ],
    "range": [
        (("keys", 0, "deletion_window_days"), [-1, 0, 6, 7, 30, 31, 365, 2**40]),
        (("keys", 0, "rotation", "period_days"), [0, 89, 90, 2560, 2561, 100000]),
    ],
    "name": [
        *[
            (path, ["Bad_Name", "-app", "app-", "app data", "", "a" * 129, "a" * 128, "a", "0"])
            for path in _every_key("name")
        ],
        (("keys", 1, "grants", 0, "name"), ["ci sign", "", "x" * 257, "x" * 256, "a:b/c_d-e"]),
        (("keys", 2, "replicas", 0, "region"), ["EU-WEST-1", "eu-west", "europe", "ap-east-1"]),
        (("keys", 3, "key_material", "env"), ["1KEY", "MY-KEY", "", "_K"]),
        (
            ("keys", 3, "key_material"),
            [{"file": f} for f in ("/etc/key", "../key", "a/../../k", "\\k", "keys/k.bin")],
        ),
    ],
    "alias": [
        *[
            (
                path,
                [
                    "app",
                    "alias/aws/x",
                    "alias/AWS/x",
                    "alias/kms-reconciler/apply-lock",
                    "alias/a b",
                    "alias/a:b",
                    "alias/",
                    "alias/" + "a" * 251,
                    "alias/" + "a" * 250,
                    "alias/awsome",
                    "alias/kms-reconciler-x",
                ],
            )
            for path in (("keys", 0, "aliases", 0), ("keys", 2, "replicas", 0, "aliases", 0))
        ],
        (("keys", 0, "aliases"), [["alias/a", "alias/a"], [f"alias/a{i}" for i in range(51)]]),
        (("keys", 0, "aliases"), [[f"alias/a{i}" for i in range(50)]]),
    ],
    "tag_key": [
        (("keys", 0, "tags"), [{k: "v"} for k in ("aws:x", "AWS:x", "", "team#1", "a" * 129)]),
        (("keys", 0, "tags"), [{"a" * 128: "v"}, {"a b+c=d.e_f:g/h@i": "v"}]),
        (("keys", 2, "replicas", 0, "tags"), [{"aws:x": "v"}, {"ok": None}, {"t!": "v"}]),
    ],
    "tag_value": [
        (("keys", 0, "tags", "Owner"), ["v#1", "x" * 257, "x" * 256, "", "a b"]),
        (
            ("keys", 0, "tags"),
            [{f"t{i}": "v" for i in range(51)}, {f"t{i}": "v" for i in range(50)}],
        ),
    ],
    "length": [
        (("keys", 0, "description"), ["x" * 8193, "x" * 8192]),
        (("keys", 2, "replicas", 0, "description"), ["x" * 8193, "x" * 8192]),
        (("keys", 2, "grants", 0, "constraints", "encryption_context_equals"), [{}]),
        (("keys", 1, "grants", 0, "operations"), [[], ["Sign", "Sign"]]),
    ],
    "extra_field": [
        (("keys", 0, "colour"), ["blue"]),
        (("keys", 0, "rotation", "period"), [365]),
        (("keys", 1, "grants", 0, "grantee"), ["x"]),
        (("keys", 3, "key_material", "bytes"), ["x"]),
        (("keys", 2, "replicas", 0, "multi_region"), [True]),
        (("defaults",), [{}]),
    ],
    "wrong_type": [
        (("keys", 0, "description"), [5, True, ["x"], {"a": "b"}]),
        (("keys", 0, "enabled"), ["yes", 1, "true", None]),
        (("keys", 0, "deletion_protection"), ["no", 0]),
        (("keys", 0, "deletion_window_days"), ["30", True, [30]]),
        (("keys", 0, "rotation"), ["yes", True, []]),
        (("keys", 0, "rotation", "period_days"), ["365", False]),
        (("keys", 0, "aliases"), ["alias/app-data", {"a": 1}]),
        (("keys", 0, "tags"), [["Owner"], "Owner"]),
        (("keys", 0, "tags", "Owner"), [5, True, 1.5, ["x"]]),
        (("keys", 0, "name"), [5, ["app"]]),
        (("keys", 0, "allow_alias_takeover"), ["yes", 1]),
        (("keys",), [{"name": "x"}, "x"]),
    ],
    "missing": [
        *[(path, [DELETE]) for path in _every_key("name")],
        (("keys", 1, "grants", 0, "grantee_principal"), [DELETE]),
        (("keys", 1, "grants", 0, "operations"), [DELETE]),
        (("keys", 2, "replicas", 0, "region"), [DELETE]),
    ],
    # loader only -----------------------------------------------------------------------
    "cross_field": [
        (("keys", 0, "key_usage"), ["SIGN_VERIFY", "KEY_AGREEMENT"]),  # not for symmetric
        (("keys", 1, "key_usage"), [DELETE]),  # required for RSA
        (("keys", 1, "rotation", "enabled"), [True]),  # RSA keys do not rotate
        (("keys", 0, "key_material"), [{"env": "K"}]),  # AWS_KMS key
        (("keys", 0, "replicas"), [[{"region": "eu-west-1"}]]),  # not multi-Region
        (("keys", 1, "grants", 0, "operations", 0), ["Decrypt"]),  # not on a signing key
    ],
    "exactly_one": [
        (("keys", 0, "policy"), [{"template": "a.json.j2", "document": {"a": 1}}, {}]),
        (("keys", 3, "key_material", "file"), ["k.bin"]),  # beside env
        (("keys", 2, "grants", 0, "constraints", "encryption_context_subset"), [{"a": "b"}]),
    ],
    "unique_within_key": [
        (("keys", 1, "grants", 1), [{**VALID_KEYS[1]["grants"][0], "operations": ["Verify"]}]),
        (("keys", 2, "replicas", 1), [{"region": "eu-west-1"}]),
    ],
    "cross_file": [
        (("keys", 1, "name"), ["app-data"]),  # two keys of one name in a target
        (("keys", 1, "aliases", 0), ["alias/app-data"]),  # one alias, two keys
        (("keys", 0, "targets"), [["nowhere"]]),  # no such target
    ],
    "principal": [
        (("keys", 1, "grants", 0, "grantee_principal"), ["events.amazonaws.com", "role/ci"]),
        (("keys", 1, "grants", 0, "retiring_principal"), ["arn:aws:iam::1:role/x"]),
    ],
}
INVENTORY_MUTATIONS: dict[str, list[Mutation]] = {
    "enum": [(("request_quotas",), [{"Bogus": 1}, {"createkey": 1}, {"DescribeKey": 9}])],
    "range": [
        (("targets", 0, "session_duration_seconds"), [0, 899, 900, 43200, 43201]),
        (("defaults", "deletion_window_days"), [6, 7, 31]),
        (("targets", 0, "defaults", "rotation"), [{"period_days": 89}, {"period_days": 2560}]),
    ],
    "name": [
        (("targets", 0, "name"), ["Prod", "prod_1", "", "p" * 129]),
        (("targets", 0, "account_id"), ["12345", "1111222233334", "abcdefghijkl", "000011112222"]),
        (("targets", 1, "region"), ["EU-WEST-1", "eu-west", "us-gov-west-1"]),
        (("targets", 0, "role_arn"), ["role/x", ["arn:aws:iam::111122223333:role/a", "x"]]),
        (
            ("targets", 0, "role_arn"),
            [["arn:aws:iam::111122223333:role/a", "arn:aws:iam::444455556666:role/b"]],
        ),
        (("targets", 0, "session_name"), ["a", "a b", "s" * 65, "ci@org"]),
        (("organization_ids",), [["o-short"], ["O-A1B2C3D4E5"], ["o-a1b2c3d4e5f6"]]),
        (("trusted_accounts",), [["1234"], ["123412341234"]]),
    ],
    "tag_key": [
        (("identity_tag",), ["aws:name", "", "tag#", "t" * 129, "team:name"]),
        (("defaults", "tags"), [{"AWS:x": "v"}, {"ok": "v"}]),
    ],
    "tag_value": [(("defaults", "tags", "ManagedBy"), ["kms#", "x" * 257, ""])],
    "length": [(("targets",), [[]])],
    "extra_field": [
        (("colour",), ["blue"]),
        (("targets", 0, "acount_id"), ["111122223333"]),
        (("defaults", "key_spec"), ["SYMMETRIC_DEFAULT"]),
        (("ignore", 0, "name"), ["x"]),
    ],
    "wrong_type": [
        (("targets", 0, "account_id"), [111122223333, 11112222333]),
        (("targets",), [{"name": "prod"}, "prod"]),
        (("targets", 0, "vars"), [["a"]]),
        (("request_quotas", "CreateKey"), ["5", True]),
        (("trusted_accounts",), ["111122223333", [111122223333]]),
        (("defaults", "rotation", "enabled"), ["yes", 1]),
    ],
    "missing": [
        (("targets",), [DELETE]),
        *[(("targets", 0, f), [DELETE]) for f in ("name", "account_id", "region")],
    ],
    # loader only -----------------------------------------------------------------------
    "exactly_one": [(("ignore", 0, "key_id"), ["1234abcd-12ab-34cd-56ef-1234567890ab"])],
    "unique_within_key": [(("targets", 1, "name"), ["prod"])],
}
COUNT = 360
ALWAYS_INVALID = {"extra_field", "wrong_type", "missing"}  # no valid value among them
LOADER_ONLY = {"cross_field", "exactly_one", "unique_within_key", "cross_file", "principal"}
SCHEMA_CATEGORIES = {"enum", "range", "name", "alias", "tag_key", "tag_value", "length"} | {
    "extra_field",
    "wrong_type",
    "missing",
}


def mutated(document: Any, path: Path_, value: Any) -> Any:
    out = copy.deepcopy(document)
    node = out
    for part in path[:-1]:
        node = node[part]
    if value is DELETE:
        del node[path[-1]]
    elif isinstance(node, list) and path[-1] == len(node):
        node.append(copy.deepcopy(value))
    else:
        node[path[-1]] = copy.deepcopy(value)
    return out


def generated_inputs(count: int) -> list[tuple[str, str, Any]]:
    """(file kind, category, document): one or two mutations of one category each."""
    rng = random.Random(20261129)
    valid = {"keys": VALID_KEYS, "inventory": VALID_INVENTORY}
    tables = {"keys": KEY_MUTATIONS, "inventory": INVENTORY_MUTATIONS}
    out = []
    for n in range(count):
        kind = "keys" if n % 3 else "inventory"
        category = rng.choice(sorted(tables[kind]))
        document: Any = valid[kind] if kind == "inventory" else {"keys": valid[kind]}
        path, values = rng.choice(tables[kind][category])
        document = mutated(document, path, rng.choice(values))
        if category in SCHEMA_CATEGORIES and rng.random() < 0.3:
            path, values = rng.choice(tables[kind][category])
            # The first mutation may have removed or replaced what this one would change.
            with contextlib.suppress(KeyError, IndexError, TypeError):
                document = mutated(document, path, rng.choice(values))
        out.append((kind, category, document))
    return out


def loader_accepts(tmp_path: Path, kind: str, document: Any, n: int) -> bool:
    root = tmp_path / f"inv{n}"
    root.mkdir()
    inventory = document if kind == "inventory" else VALID_INVENTORY
    keys = document if kind == "keys" else {"keys": VALID_KEYS}
    (root / "inventory.yaml").write_text(yaml.safe_dump(inventory))
    (root / "keys.yaml").write_text(yaml.safe_dump(keys))
    try:
        load_inventory(root)
    except InputError:
        return False
    return True


def test_the_generator_starts_from_documents_both_accept(tmp_path: Path) -> None:
    assert validator("inventory.schema.json").is_valid(VALID_INVENTORY)
    assert validator("keyfile.schema.json").is_valid({"keys": VALID_KEYS})
    assert loader_accepts(tmp_path, "keys", {"keys": VALID_KEYS}, 0)


def test_what_the_schema_rejects_the_loader_rejects(tmp_path: Path) -> None:
    checks = {
        "keys": validator("keyfile.schema.json"),
        "inventory": validator("inventory.schema.json"),
    }
    # category -> [inputs, schema rejects, loader rejects, both agree]
    counts: dict[str, list[int]] = {}
    for n, (kind, category, document) in enumerate(generated_inputs(COUNT)):
        schema_ok = checks[kind].is_valid(document)
        loader_ok = loader_accepts(tmp_path, kind, document, n)
        assert schema_ok or not loader_ok, (category, document)
        row = counts.setdefault(category, [0, 0, 0, 0])
        row[0] += 1
        row[1] += not schema_ok
        row[2] += not loader_ok
        row[3] += schema_ok == loader_ok
    assert set(counts) == SCHEMA_CATEGORIES | LOADER_ONLY
    for category in SCHEMA_CATEGORIES:
        inputs, schema_rejects, loader_rejects, agree = counts[category]
        # Both outcomes (boundary values are valid), and the two sides agree on every input.
        assert schema_rejects > 0, category
        assert schema_rejects < inputs or category in ALWAYS_INVALID, category
        assert agree == inputs, (category, counts[category])
    for category in LOADER_ONLY:
        inputs, schema_rejects, loader_rejects, _ = counts[category]
        # Documented as the loader's alone: the schema lets these through.
        assert schema_rejects == 0 and loader_rejects == inputs, (category, counts[category])
    total = sum(row[0] for row in counts.values())
    assert total == COUNT and sum(row[1] for row in counts.values()) > 200
