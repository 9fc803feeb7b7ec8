"""Imported key material (origin EXTERNAL): spec validation, plan, applier, drift, no leaks.

moto does not implement GetParametersForImport / ImportKeyMaterial (HTTP 500 in server mode,
NotImplementedError in-process) and gives EXTERNAL keys no PendingImport state
(../shared/moto-kms-notes.md): the import flow runs against tests/fakes.py's FakeKms here.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from reconciler import applier, formatters
from reconciler.applier import OpEvent, apply_target
from reconciler.aws import NO_SETTLE, KmsApi, Settle
from reconciler.cli import main
from reconciler.desired import build_desired
from reconciler.drift import detect
from reconciler.errors import InputError
from reconciler.loader import display_path, load_inventory
from reconciler.plan import Action, OpKind, Plan, to_dict
from reconciler.planner import make_plan
from reconciler.state import DesiredKey, KeyMaterial
from tests.factories import desired, desired_key, observed, observed_key
from tests.fakes import FakeKms

SECRET = bytes(range(0x41, 0x61))  # 32 bytes of "key material" the tests must never see
INVENTORY = 'targets:\n  - name: prod\n    account_id: "111122223333"\n    region: us-east-1\n'
EXTERNAL = {"key_spec": "SYMMETRIC_DEFAULT", "origin": "EXTERNAL", "rotation_enabled": None}


def case(id: str, *values: Any) -> Any:
    return pytest.param(*values, id=id)


def external_key(name: str = "ext", material: KeyMaterial | None = None) -> DesiredKey:
    dk = desired_key(name, **{**EXTERNAL, "rotation_period_days": None})
    km = material or KeyMaterial("file keys/ext.bin", root="/inv")
    return replace(dk, key_material=km)


# -- spec validation ------------------------------------------------------------------------


def problems(tmp_path: Path, *fields: str) -> list[str]:
    root = tmp_path / "keyspecs"
    root.mkdir(exist_ok=True)
    (root / "inventory.yaml").write_text(INVENTORY)
    body = "keys:\n  - name: app\n" + "".join(f"    {f}\n" for f in fields)
    (root / "app.yaml").write_text(body)
    try:
        inv = load_inventory(root)
        build_desired(inv, inv.settings.targets)
    except InputError as exc:
        return [str(p) for p in exc.problems]
    return []


@pytest.mark.parametrize(
    ("fields", "field", "fragment"),
    [
        case(
            "material-needs-external",
            ["key_material: {file: keys/app.bin}"],
            "keys[0].key_material",
            "only keys with origin EXTERNAL",
        ),
        case(
            "no-source",
            ["origin: EXTERNAL", "key_material: {expiration_model: KEY_MATERIAL_DOES_NOT_EXPIRE}"],
            "keys[0].key_material",
            "give exactly one of 'file' or 'env'",
        ),
        case(
            "two-sources",
            ["origin: EXTERNAL", "key_material: {file: a.bin, env: APP_KEY}"],
            "keys[0].key_material",
            "(found file, env)",
        ),
        case(
            "absolute-file",
            ["origin: EXTERNAL", "key_material: {file: /etc/key.bin}"],
            "keys[0].key_material",
            "must be a path inside the inventory",
        ),
        case(
            "escaping-file",
            ["origin: EXTERNAL", "key_material: {file: ../key.bin}"],
            "keys[0].key_material",
            "must be a path inside the inventory",
        ),
        case(
            "bad-env-name",
            ["origin: EXTERNAL", "key_material: {env: 'APP-KEY'}"],
            "keys[0].key_material",
            "not an environment variable name",
        ),
        case(
            "bad-model",
            ["origin: EXTERNAL", "key_material: {env: K, expiration_model: SOMETIMES}"],
            "keys[0].key_material",
            "'SOMETIMES' is not one of",
        ),
        case(
            "expires-needs-valid-to",
            ["origin: EXTERNAL", "key_material: {env: K, expiration_model: KEY_MATERIAL_EXPIRES}"],
            "keys[0].key_material",
            "valid_to: is required when expiration_model is KEY_MATERIAL_EXPIRES",
        ),
        case(
            "valid-to-without-expiry",
            ["origin: EXTERNAL", "key_material: {env: K, valid_to: 2030-01-01}"],
            "keys[0].key_material",
            "valid_to: is allowed only with",
        ),
        case(
            "external-cannot-rotate",
            ["origin: EXTERNAL", "rotation: {enabled: true}", "key_material: {env: K}"],
            "keys[0].rotation.enabled",
            "automatic rotation exists only for",
        ),
        case(
            "unknown-field",
            ["origin: EXTERNAL", "key_material: {env: K, value: secret}"],
            "keys[0].key_material.value",
            "unknown field",
        ),
    ],
)
def test_key_material_validation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fields: list[str], field: str, fragment: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (found,) = problems(tmp_path, *fields)
    assert found.startswith("keyspecs/app.yaml:"), found
    assert field in found and fragment in found and "'app'" in found, found
    assert "\n" not in found


def test_valid_key_material_specs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert problems(tmp_path, "origin: EXTERNAL", "key_material: {file: keys/app.bin}") == []
    inv = load_inventory(tmp_path / "keyspecs")
    (dt,) = build_desired(inv, inv.settings.targets)
    km = dt.keys[0].key_material
    assert km == KeyMaterial(
        "file keys/app.bin", "KEY_MATERIAL_DOES_NOT_EXPIRE", None, display_path(inv.root)
    )
    assert (
        problems(
            tmp_path,
            "origin: EXTERNAL",
            "key_material:",
            "  env: APP_KEY",
            "  expiration_model: KEY_MATERIAL_EXPIRES",
            "  valid_to: 2030-06-30",
        )
        == []
    )
    inv = load_inventory(tmp_path / "keyspecs")
    (dt,) = build_desired(inv, inv.settings.targets)
    km = dt.keys[0].key_material
    assert km is not None and km.source == "env APP_KEY"
    assert km.valid_to == datetime(2030, 6, 30, tzinfo=timezone.utc)


# -- planner --------------------------------------------------------------------------------


def test_create_external_key_imports_right_after_create_key() -> None:
    km = KeyMaterial(
        "env APP_KEY", "KEY_MATERIAL_EXPIRES", datetime(2030, 1, 1, tzinfo=timezone.utc), "/inv"
    )
    plan = make_plan(desired(external_key("ext", km)), observed())
    kinds = [op.kind for op in plan.operations]
    assert kinds[:2] == [OpKind.CREATE_KEY, OpKind.IMPORT_KEY_MATERIAL]
    create, imp = plan.operations[:2]
    assert create.params["Origin"] == "EXTERNAL"
    assert imp.phase == create.phase
    assert dict(imp.params) == {
        "source": "env APP_KEY",
        "root": "/inv",
        "key_spec": "SYMMETRIC_DEFAULT",
        "ExpirationModel": "KEY_MATERIAL_EXPIRES",
        "ValidTo": "2030-01-01T00:00:00+00:00",
    }
    (key,) = plan.keys
    assert any(c.field == "key_material" and "env APP_KEY" in str(c.after) for c in key.changes)


def test_pending_import_key_gets_an_import_and_no_enable() -> None:
    ok = observed_key("ext", key_state="PendingImport", origin="EXTERNAL", rotation_enabled=None)
    plan = make_plan(desired(external_key("ext")), observed(ok))
    assert [op.kind for op in plan.operations] == [OpKind.IMPORT_KEY_MATERIAL]
    (key,) = plan.keys
    assert key.action is Action.UPDATE
    (change,) = key.changes
    assert change.field == "key_material" and change.before == "PendingImport"


def test_enabled_external_key_gets_no_import() -> None:
    ok = observed_key("ext", origin="EXTERNAL", rotation_enabled=None, rotation_period_days=None)
    plan = make_plan(desired(external_key("ext")), observed(ok))
    assert plan.operations == ()
    assert plan.keys[0].action is Action.NOOP


def test_pending_import_without_declared_material_says_so() -> None:
    ok = observed_key("ext", key_state="PendingImport", origin="EXTERNAL", rotation_enabled=None)
    dk = replace(external_key("ext"), key_material=None)
    plan = make_plan(desired(dk), observed(ok))
    assert plan.operations == ()
    assert "PendingImport" in plan.keys[0].reason and "key_material" in plan.keys[0].reason


# -- applier --------------------------------------------------------------------------------


class ImportKms(FakeKms):
    """FakeKms answering GetParametersForImport with a real RSA-2048 public key."""

    def __init__(self) -> None:
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public_der = self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        super().__init__(
            {
                "GetParametersForImport": lambda **p: {
                    "KeyId": p["KeyId"],
                    "ImportToken": b"token",
                    "PublicKey": public_der,
                    "ParametersValidTo": datetime(2030, 1, 1, tzinfo=timezone.utc),
                }
            }
        )

    def unwrap(self, wrapped: bytes) -> bytes:
        oaep = padding.OAEP(
            mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None
        )
        return self.private_key.decrypt(wrapped, oaep)


def api_for(fake: FakeKms) -> KmsApi:
    return KmsApi(fake, sleep=lambda s: None)


def test_applier_wraps_the_file_material_for_the_new_key(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "ext.bin").write_bytes(SECRET)
    km = KeyMaterial(
        "file keys/ext.bin", "KEY_MATERIAL_EXPIRES", datetime(2030, 1, 1, tzinfo=timezone.utc)
    )
    km = replace(km, root=str(tmp_path))
    fake = ImportKms()
    result = apply_target(make_plan(desired(external_key("ext", km)), observed()), api_for(fake))
    assert result.ok, result.failed
    assert fake.names()[:3] == ["CreateKey", "GetParametersForImport", "ImportKeyMaterial"]
    _, gp = fake.calls[1]
    assert gp == {
        "KeyId": "new-0001",
        "WrappingAlgorithm": "RSAES_OAEP_SHA_256",
        "WrappingKeySpec": "RSA_2048",
    }
    _, imp = fake.calls[2]
    assert imp["KeyId"] == "new-0001" and imp["ImportToken"] == b"token"
    assert imp["ExpirationModel"] == "KEY_MATERIAL_EXPIRES"
    assert imp["ValidTo"] == datetime(2030, 1, 1, tzinfo=timezone.utc)
    assert fake.unwrap(imp["EncryptedKeyMaterial"]) == SECRET


def test_applier_reads_env_material_for_a_pending_import_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("APP_KEY", base64.b64encode(SECRET).decode())
    ok = observed_key("ext", key_state="PendingImport", origin="EXTERNAL", rotation_enabled=None)
    dk = external_key("ext", KeyMaterial("env APP_KEY"))
    fake = ImportKms()
    result = apply_target(make_plan(desired(dk), observed(ok)), api_for(fake))
    assert result.ok
    _, imp = fake.calls[-1]
    assert "ValidTo" not in imp and imp["ExpirationModel"] == "KEY_MATERIAL_DOES_NOT_EXPIRE"
    assert imp["KeyId"] == ok.key_id
    assert fake.unwrap(imp["EncryptedKeyMaterial"]) == SECRET


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        case("missing-file", "file keys/none.bin", "key material source file keys/none.bin"),
        case("unset-env", "env NO_SUCH_KEY_VAR", "env NO_SUCH_KEY_VAR: the variable is not set"),
    ],
)
def test_missing_material_fails_naming_the_source(
    tmp_path: Path, source: str, fragment: str
) -> None:
    fake = ImportKms()
    dk = external_key("ext", KeyMaterial(source, root=str(tmp_path)))
    result = apply_target(make_plan(desired(dk), observed()), api_for(fake))
    (op, message), *_ = result.failed
    assert op.kind is OpKind.IMPORT_KEY_MATERIAL and fragment in message
    assert "ImportKeyMaterial" not in fake.names()


# -- no leak: plan text, plan JSON, CLI output, events, errors, logs ------------------------


def leaked_forms() -> list[str]:
    return [
        SECRET.hex(),
        SECRET.hex().upper(),
        SECRET.decode(),
        base64.b64encode(SECRET).decode(),
        repr(SECRET),
    ]


def assert_clean(text: str, wrapped: list[bytes]) -> None:
    for form in leaked_forms():
        assert form not in text
    for blob in wrapped:
        assert blob.hex() not in text and base64.b64encode(blob).decode() not in text
        assert repr(blob)[2:40] not in text


def test_material_appears_in_no_plan_event_error_or_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    (tmp_path / "k.bin").write_bytes(SECRET)
    dk = external_key("ext", KeyMaterial("file k.bin", root=str(tmp_path)))
    target_plan = make_plan(desired(dk), observed())
    plan = Plan(targets=(target_plan,), inventory="keyspecs")
    texts = [
        formatters.plan_text(plan),
        formatters.plan_json(plan),
        formatters.plan_markdown(plan),
        json.dumps(to_dict(plan)),
    ]
    fake = ImportKms()
    events: list[OpEvent] = []
    apply_target(target_plan, api_for(fake), on_event=events.append)
    texts += [f"{e} {applier.describe_call(e.op, e.key_id)}" for e in events]
    wrapped = [p["EncryptedKeyMaterial"] for n, p in fake.calls if n == "ImportKeyMaterial"]
    # Error paths: KMS refuses the import; the wrapping fails (material too long for RSA).
    fake.failures["ImportKeyMaterial"] = ["IncorrectKeyMaterialException"]
    failed = apply_target(target_plan, api_for(fake))
    (tmp_path / "k.bin").write_bytes(SECRET * 20)
    too_long = apply_target(target_plan, api_for(fake))
    texts += [m for r in (failed, too_long) for _, m in r.failed]
    assert "IncorrectKeyMaterialException" in failed.failed[0][1]
    assert "file k.bin" in too_long.failed[0][1]
    texts += [r.getMessage() for r in caplog.records]
    assert_clean("\n".join(texts), wrapped)


def test_cli_plan_and_apply_never_print_the_material(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KMS_RECONCILER_SANDBOX_DIR", str(tmp_path / ".kms-sandbox"))
    monkeypatch.setenv("APP_KEY_MATERIAL", base64.b64encode(SECRET).decode())
    root = tmp_path / "keyspecs"
    root.mkdir()
    (root / "inventory.yaml").write_text(INVENTORY)
    (root / "keys").mkdir()
    (root / "keys" / "file.bin").write_bytes(SECRET)
    (root / "app.yaml").write_text(
        "keys:\n"
        "  - name: from-file\n    origin: EXTERNAL\n    key_material: {file: keys/file.bin}\n"
        "  - name: from-env\n    origin: EXTERNAL\n"
        "    key_material:\n      env: APP_KEY_MATERIAL\n"
        "      expiration_model: KEY_MATERIAL_EXPIRES\n      valid_to: 2030-01-01\n"
    )
    # moto does not implement GetParametersForImport / ImportKeyMaterial: those two calls go
    # to the fake; every other call reaches the sandbox's moto.
    fake = ImportKms()
    real_call = KmsApi.call

    def call(self: KmsApi, operation: str, *, settle: Settle = NO_SETTLE, **params: Any) -> Any:
        if operation in ("GetParametersForImport", "ImportKeyMaterial"):
            method = "get_parameters_for_import" if operation[0] == "G" else "import_key_material"
            return getattr(fake, method)(**params)
        return real_call(self, operation, settle=settle, **params)

    monkeypatch.setattr(KmsApi, "call", call)

    def run(*args: str) -> str:
        result = CliRunner().invoke(main, [*args, "--no-color"])
        return f"{result.exit_code}\n{result.stdout}\n{result.stderr}"

    outputs = [
        run("plan", "--sandbox"),
        run("plan", "--sandbox", "--format", "json"),
        run("apply", "--sandbox", "--auto-approve", "-vv"),
    ]
    assert outputs[-1].startswith("0\n"), outputs[-1]
    wrapped = [p["EncryptedKeyMaterial"] for n, p in fake.calls if n == "ImportKeyMaterial"]
    assert sorted(fake.unwrap(w) for w in wrapped) == [SECRET, SECRET]
    assert "env APP_KEY_MATERIAL" in outputs[0] and "file keys/file.bin" in outputs[0]
    assert "(6 KMS calls)" in outputs[0]  # 2 CreateKey, 2 GetParametersForImport + Import
    # Error paths through the CLI, in a fresh sandbox: the variable is unset, the file gone.
    monkeypatch.setenv("KMS_RECONCILER_SANDBOX_DIR", str(tmp_path / ".kms-sandbox-2"))
    monkeypatch.delenv("APP_KEY_MATERIAL")
    (root / "keys" / "file.bin").unlink()
    out = run("apply", "--sandbox", "--auto-approve")
    assert out.startswith("1\n") and "key material source" in out, out
    assert "env APP_KEY_MATERIAL" in out or "file keys/file.bin" in out
    outputs.append(out)
    outputs += [r.getMessage() for r in caplog.records]
    assert_clean("\n".join(outputs), wrapped)


# -- drift ----------------------------------------------------------------------------------


def test_drift_reports_pending_import_and_expiring_material() -> None:
    now = datetime(2030, 1, 1, tzinfo=timezone.utc)
    pending = observed_key(
        "ext", key_state="PendingImport", origin="EXTERNAL", rotation_enabled=None
    )
    report = detect(desired(external_key("ext")), observed(pending), now=now)
    (finding,) = report.findings
    assert finding.rule == "key-pending-import" and finding.severity.label == "high"

    soon = observed_key(
        "ext",
        origin="EXTERNAL",
        rotation_enabled=None,
        rotation_period_days=None,
        expiration_model="KEY_MATERIAL_EXPIRES",
        valid_to=now + timedelta(days=10),
    )
    (finding,) = detect(desired(external_key("ext")), observed(soon), now=now).findings
    assert finding.rule == "key-material-expiring" and finding.severity.label == "medium"
    assert "2030-01-11" in finding.message

    later = replace(soon, valid_to=now + timedelta(days=90))
    unknown = replace(soon, valid_to=None, expiration_model=None)  # moto: never reported
    for ok in (later, unknown):
        assert detect(desired(external_key("ext")), observed(ok), now=now).findings == ()


# -- the material is checked before any write (never a key left in PendingImport) ----------


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        (lambda root, env: env.clear(), "env APP_KEY_MATERIAL: the variable is not set"),
        # base64 of 9 bytes: decodes, then is too short for a SYMMETRIC_DEFAULT key
        (lambda root, env: env.update(APP_KEY_MATERIAL="dG9vLXNob3J0"), "holds 9 bytes"),
        (lambda root, env: (root / "keys" / "file.bin").write_bytes(b""), "the file is empty"),
        (lambda root, env: (root / "keys" / "file.bin").unlink(), "cannot read"),
        (lambda root, env: (root / "keys" / "file.bin").write_bytes(SECRET * 2), "holds 64 bytes"),
    ],
    ids=["env-unset", "env-wrong-length", "file-empty", "file-missing", "file-wrong-length"],
)
def test_apply_checks_the_material_before_create_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setup: Any, expected: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KMS_RECONCILER_SANDBOX_DIR", str(tmp_path / ".kms-sandbox"))
    monkeypatch.delenv("APP_KEY_MATERIAL", raising=False)
    root = tmp_path / "keyspecs"
    (root / "keys").mkdir(parents=True)
    (root / "inventory.yaml").write_text(INVENTORY)
    (root / "keys" / "file.bin").write_bytes(SECRET)
    (root / "app.yaml").write_text(
        "keys:\n"
        "  - name: from-file\n    origin: EXTERNAL\n    key_material: {file: keys/file.bin}\n"
        "  - name: from-env\n    origin: EXTERNAL\n    key_material: {env: APP_KEY_MATERIAL}\n"
        "  - name: plain\n"
    )
    env = {"APP_KEY_MATERIAL": base64.b64encode(SECRET).decode()}
    setup(root, env)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    sent: list[str] = []
    real_call = KmsApi.call

    def call(self: KmsApi, operation: str, *, settle: Settle = NO_SETTLE, **params: Any) -> Any:
        if "lock" not in str(params):  # the apply lock's own calls (its anchor key, alias)
            sent.append(operation)
        return real_call(self, operation, settle=settle, **params)

    monkeypatch.setattr(KmsApi, "call", call)
    for args in (["apply", "--auto-approve"], ["apply", "--dry-run"]):
        result = CliRunner().invoke(main, [*args, "--sandbox", "--no-color"])
        assert result.exit_code == 1, result.output
        assert expected in result.stderr and "nothing was changed" in result.stderr
        for form in leaked_forms():
            assert form not in result.output
    # no key was made, not even the one without material: the run stopped before any write
    assert "CreateKey" not in sent and "ImportKeyMaterial" not in sent
