"""The embedded sandbox's state file: data (JSON), never code; atomic; one-line errors.

Everything runs in-process against moto (``sandbox_session``), with the state folder in
tmp_path; one test runs the real CLI as a subprocess to see its real stderr.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner, Result

from reconciler import sandbox
from reconciler.aws import sandbox_session
from reconciler.cli import main
from reconciler.errors import AwsError

REPO = Path(__file__).resolve().parent.parent
ACCOUNT = "123456789012"  # moto's default account: no header needed
REGION = "us-east-1"
OTHER_REGION = "eu-west-1"


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The sandbox folder (not created yet), with the sample inventory in the cwd."""
    monkeypatch.chdir(tmp_path)
    state = tmp_path / ".kms-sandbox"
    monkeypatch.setenv(sandbox.SANDBOX_DIR_ENV, str(state))
    shutil.copytree(REPO / "keyspecs", tmp_path / "keyspecs")
    yield state


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, [*args, "--sandbox", "--no-color"])


def kms(region: str = REGION) -> Any:
    return boto3.client("kms", region_name=region)


def assert_one_error_line(result: Result, *fragments: str) -> str:
    """Exit 1, a single ``error:`` line on stderr, no exception escaped the CLI."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # not a traceback
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in result.output
    return lines[0]


# -- round trips --------------------------------------------------------------------------


def test_cli_plan_apply_plan_round_trip_through_the_json_state(folder: Path) -> None:
    assert cli("plan").exit_code == 0
    assert cli("apply", "--auto-approve").exit_code == 0
    state = folder / sandbox.STATE_FILE
    document = json.loads(state.read_text())
    assert document["format"] == "kms-reconciler-sandbox"
    assert document["format_version"] == sandbox.FORMAT_VERSION
    assert sorted(os.listdir(folder)) == [sandbox.STATE_FILE]  # no pickle, no temp file
    every = [k for b in document["backends"] for k in b["keys"]]
    # one apply-lock anchor per target (account and Region) beside the inventory's keys
    anchors = [k for k in every if "kms-reconciler:lock-anchor" in k["tags"]]
    keys = [k for k in every if k not in anchors]
    assert len(anchors) == 2
    names = {k["tags"].get("kms-reconciler:name") for k in keys}
    assert len(keys) == 15 and {"app-data", "release-signing", "dr-backups"} <= names
    written = state.stat().st_mtime_ns, state.read_bytes()

    again = cli("plan", "--detailed-exitcode")
    assert again.exit_code == 0, again.output
    assert "No changes." in again.stdout
    # a run that changes nothing does not rewrite the state
    assert (state.stat().st_mtime_ns, state.read_bytes()) == written


def _everything(client: Any, key_ids: list[str]) -> dict[str, Any]:
    """What the KMS API shows of the keys: metadata, policy, tags, aliases, grants,
    rotation status and history, public keys."""
    out: dict[str, Any] = {"aliases": client.list_aliases()["Aliases"]}
    for key_id in key_ids:
        meta = client.describe_key(KeyId=key_id)["KeyMetadata"]
        entry = {
            "meta": meta,
            "policy": client.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"],
            "tags": client.list_resource_tags(KeyId=key_id)["Tags"],
            "grants": client.list_grants(KeyId=key_id)["Grants"],
            "rotation": client.get_key_rotation_status(KeyId=key_id),
            "rotations": client.list_key_rotations(KeyId=key_id)["Rotations"],
            # reconciler.moto_kms records use: it survives the reload too
            "last_usage": client.get_key_last_usage(KeyId=key_id),
        }
        if meta["KeySpec"] != "SYMMETRIC_DEFAULT":
            entry["public"] = client.get_public_key(KeyId=key_id)["PublicKey"]
        for value in entry.values():
            if isinstance(value, dict):
                value.pop("ResponseMetadata", None)
        out[key_id] = entry
    return out


def test_keys_and_their_crypto_survive_a_reload(folder: Path) -> None:
    message = b"release 1.2.3"
    with sandbox_session():
        client = kms()
        sym = client.create_key(
            KeySpec="SYMMETRIC_DEFAULT",
            KeyUsage="ENCRYPT_DECRYPT",
            Description="data",
            Tags=[{"TagKey": "kms-reconciler:name", "TagValue": "data"}],
        )["KeyMetadata"]["KeyId"]
        client.create_alias(AliasName="alias/data", TargetKeyId=sym)
        client.enable_key_rotation(KeyId=sym, RotationPeriodInDays=180)
        client.rotate_key_on_demand(KeyId=sym)
        client.create_grant(
            KeyId=sym,
            GranteePrincipal=f"arn:aws:iam::{ACCOUNT}:role/reader",
            Operations=["Decrypt"],
            Name="reader",
            Constraints={"EncryptionContextSubset": {"app": "x"}},
        )
        rsa_key = client.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"][
            "KeyId"
        ]
        ecc_key = client.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"][
            "KeyId"
        ]
        gone = client.create_key(Description="no KeySpec, no KeyUsage")["KeyMetadata"]["KeyId"]
        client.schedule_key_deletion(KeyId=gone, PendingWindowInDays=7)
        mrk = client.create_key(
            KeySpec="SYMMETRIC_DEFAULT", KeyUsage="ENCRYPT_DECRYPT", MultiRegion=True
        )["KeyMetadata"]["KeyId"]
        client.replicate_key(
            KeyId=mrk,
            ReplicaRegion=OTHER_REGION,
            Description="replica",
            Tags=[{"TagKey": "kms-reconciler:replica-of", "TagValue": "data"}],
        )
        keys = [sym, rsa_key, ecc_key, gone, mrk]

        blob = client.encrypt(KeyId=sym, Plaintext=b"secret", EncryptionContext={"app": "x"})[
            "CiphertextBlob"
        ]
        signatures = {
            key_id: client.sign(
                KeyId=key_id, Message=message, SigningAlgorithm=algorithm, MessageType="RAW"
            )["Signature"]
            for key_id, algorithm in ((rsa_key, "RSASSA_PSS_SHA_256"), (ecc_key, "ECDSA_SHA_256"))
        }
        before = _everything(client, keys)
        replica_before = _everything(kms(OTHER_REGION), [mrk])

    state = folder / sandbox.STATE_FILE
    saved = state.read_bytes()
    with sandbox_session():
        client = kms()
        assert _everything(client, keys) == before
        assert _everything(kms(OTHER_REGION), [mrk]) == replica_before
        decrypted = client.decrypt(CiphertextBlob=blob, EncryptionContext={"app": "x"})
        assert decrypted["Plaintext"] == b"secret" and decrypted["KeyId"].endswith(sym)
        for key_id, signature in signatures.items():
            algorithm = "RSASSA_PSS_SHA_256" if key_id == rsa_key else "ECDSA_SHA_256"
            verify = client.verify(
                KeyId=key_id,
                Message=message,
                Signature=signature,
                SigningAlgorithm=algorithm,
                MessageType="RAW",
            )
            assert verify["SignatureValid"] is True
            fresh = client.sign(KeyId=key_id, Message=b"new", SigningAlgorithm=algorithm)
            assert client.verify(
                KeyId=key_id,
                Message=b"new",
                Signature=fresh["Signature"],
                SigningAlgorithm=algorithm,
            )["SignatureValid"]
    # decrypting, signing and verifying changed only the keys' recorded use
    document = json.loads(state.read_text())
    used = {k["id"]: k["last_usage"] for b in document["backends"] for k in b["keys"]}
    assert used[sym]["Operation"] == "Decrypt"
    assert used[rsa_key]["Operation"] == used[ecc_key]["Operation"] == "Verify"
    assert used[gone] is None
    for saved_key in (k for b in json.loads(saved)["backends"] for k in b["keys"]):
        if saved_key["id"] == sym:
            assert saved_key["last_usage"]["Operation"] == "Encrypt"


def test_private_keys_are_base64_pkcs8_der(folder: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    with sandbox_session():
        key_id = kms().create_key(KeySpec="ECC_NIST_P384", KeyUsage="SIGN_VERIFY")["KeyMetadata"][
            "KeyId"
        ]
        public = kms().get_public_key(KeyId=key_id)["PublicKey"]
    (key,) = json.loads((folder / sandbox.STATE_FILE).read_text())["backends"][0]["keys"]
    private = serialization.load_der_private_key(base64.b64decode(key["private_key"]), None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert private.curve.name == "secp384r1"
    assert (
        private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        == public
    )
    assert len(base64.b64decode(key["key_material"])) == 32
    assert not isinstance(private, rsa.RSAPrivateKey)


def _saved_keys(folder: Path) -> dict[str, dict[str, Any]]:
    document = json.loads((folder / sandbox.STATE_FILE).read_text())
    return {f"{b['region']}/{k['id']}": k for b in document["backends"] for k in b["keys"]}


def test_create_key_makes_no_private_key_until_first_use(folder: Path) -> None:
    """moto generates an RSA-2048 key for every CreateKey, symmetric keys too (~50 ms each,
    most of an apply); the sandbox makes one only when a key first needs it."""
    import moto.kms.utils

    made: list[str] = []
    real = moto.kms.utils.generate_private_key

    def counted(key_spec: str) -> Any:
        made.append(key_spec)
        return real(key_spec)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(moto.kms.utils, "generate_private_key", counted)
        with sandbox_session():
            client = kms()
            sym = client.create_key(KeySpec="SYMMETRIC_DEFAULT", KeyUsage="ENCRYPT_DECRYPT")
            hmac = client.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")
            signer = client.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")
            ids = [k["KeyMetadata"]["KeyId"] for k in (sym, hmac, signer)]
            blob = client.encrypt(KeyId=ids[0], Plaintext=b"x")["CiphertextBlob"]
            assert client.decrypt(CiphertextBlob=blob)["Plaintext"] == b"x"
            mac = client.generate_mac(KeyId=ids[1], Message=b"m", MacAlgorithm="HMAC_SHA_256")
            assert client.verify_mac(
                KeyId=ids[1], Message=b"m", MacAlgorithm="HMAC_SHA_256", Mac=mac["Mac"]
            )["MacValid"]
            assert made == []  # nothing so far needed a private key
        saved = {k["id"]: k for k in _saved_keys(folder).values()}
        assert [saved[i]["private_key"] for i in ids] == [None, None, None]

        with sandbox_session():
            client = kms()
            signature = client.sign(KeyId=ids[2], Message=b"m", SigningAlgorithm="ECDSA_SHA_256")
            public = client.get_public_key(KeyId=ids[2])["PublicKey"]
            assert made == ["ECC_NIST_P256"]
        saved = {k["id"]: k for k in _saved_keys(folder).values()}
        assert saved[ids[0]]["private_key"] is None and saved[ids[2]]["private_key"]

        with sandbox_session():  # made once: the same key after a reload
            client = kms()
            assert client.get_public_key(KeyId=ids[2])["PublicKey"] == public
            assert client.verify(
                KeyId=ids[2],
                Message=b"m",
                Signature=signature["Signature"],
                SigningAlgorithm="ECDSA_SHA_256",
            )["SignatureValid"]
        assert made == ["ECC_NIST_P256"]


def test_a_multi_region_family_keeps_one_private_key(folder: Path) -> None:
    with sandbox_session():
        key_id = kms().create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY", MultiRegion=True)[
            "KeyMetadata"
        ]["KeyId"]
        kms().replicate_key(KeyId=key_id, ReplicaRegion=OTHER_REGION)
    saved = _saved_keys(folder)
    primary, replica = saved[f"{REGION}/{key_id}"], saved[f"{OTHER_REGION}/{key_id}"]
    assert primary["private_key"] and primary["private_key"] == replica["private_key"]
    with sandbox_session():
        signature = kms().sign(KeyId=key_id, Message=b"m", SigningAlgorithm="RSASSA_PSS_SHA_256")
        assert kms(OTHER_REGION).verify(
            KeyId=key_id,
            Message=b"m",
            Signature=signature["Signature"],
            SigningAlgorithm="RSASSA_PSS_SHA_256",
        )["SignatureValid"]


def test_a_state_with_private_keys_for_every_key_still_loads(folder: Path) -> None:
    """States written before CreateKey stopped making private keys carry one for every
    key, symmetric ones too: they load, work, and an unchanged state is not rewritten."""
    import moto.kms.utils
    from cryptography.hazmat.primitives import serialization

    with sandbox_session():
        client = kms()
        sym = client.create_key(KeySpec="SYMMETRIC_DEFAULT")["KeyMetadata"]["KeyId"]
        rsa_key = client.create_key(KeySpec="RSA_3072", KeyUsage="SIGN_VERIFY")["KeyMetadata"][
            "KeyId"
        ]
        blob = client.encrypt(KeyId=sym, Plaintext=b"x")["CiphertextBlob"]
    state = folder / sandbox.STATE_FILE
    document = json.loads(state.read_text())
    old = {}
    for key in document["backends"][0]["keys"]:  # as the writer before this one saved it
        der = sandbox._der_of(moto.kms.utils.generate_private_key(key["key_spec"]))
        assert der is not None
        key["private_key"] = base64.b64encode(der).decode()
        old[key["id"]] = der
    state.write_text(json.dumps(document))
    written = state.read_bytes()
    assert cli("plan").exit_code == 0  # (the inventory's keys are not there: to create)
    assert state.read_bytes() == written  # loaded, nothing changed, not rewritten
    public = (
        serialization.load_der_private_key(old[rsa_key], None)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with sandbox_session():
        client = kms()
        assert client.decrypt(CiphertextBlob=blob)["Plaintext"] == b"x"
        assert client.get_public_key(KeyId=rsa_key)["PublicKey"] == public
        signature = client.sign(KeyId=rsa_key, Message=b"m", SigningAlgorithm="RSASSA_PSS_SHA_256")
        assert client.verify(
            KeyId=rsa_key,
            Message=b"m",
            Signature=signature["Signature"],
            SigningAlgorithm="RSASSA_PSS_SHA_256",
        )["SignatureValid"]
    saved = {k["id"]: k for k in _saved_keys(folder).values()}
    assert {i: base64.b64decode(saved[i]["private_key"]) for i in old} == old  # kept as was


def test_a_private_key_of_an_unknown_kind_is_generated_again_on_use(folder: Path) -> None:
    from moto.kms.models import kms_backends

    with sandbox_session():
        key_id = kms().create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"][
            "KeyId"
        ]
        kms_backends[ACCOUNT][REGION].keys[key_id].private_key = object()  # a newer moto's
    (key,) = json.loads((folder / sandbox.STATE_FILE).read_text())["backends"][0]["keys"]
    assert key["private_key"] is None
    with sandbox_session():
        assert len(kms().get_public_key(KeyId=key_id)["PublicKey"]) > 256


def test_concurrent_calls_are_served_one_at_a_time(folder: Path) -> None:
    """The applier calls KMS from several threads; moto's backends are not thread-safe
    (CreateAlias iterates over every key while CreateKey adds one)."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: races show
    errors: list[BaseException] = []
    try:
        with sandbox_session():
            client = kms()
            for i in range(300):  # many keys: moto's loops over them take long enough to race
                client.create_key(Description=f"{i}")

            def work(worker: int) -> None:
                try:
                    for i in range(15):
                        key_id = client.create_key(Description=f"{worker}-{i}")["KeyMetadata"][
                            "KeyId"
                        ]
                        client.create_alias(AliasName=f"alias/w{worker}-{i}", TargetKeyId=key_id)
                        client.list_aliases()
                except BaseException as exc:  # reported below
                    errors.append(exc)

            threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert not errors, errors[0]
            assert len(client.list_aliases()["Aliases"]) >= 60
    finally:
        sys.setswitchinterval(previous)


# -- hostile and foreign files ------------------------------------------------------------


class _Payload:
    """Unpickling this runs code: it creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


def _plant_pickle(folder: Path, marker: Path) -> None:
    payload = pickle.dumps({"version": 1, "backends": _Payload(marker)})
    pickle.loads(payload)  # the payload works: it would have run, had it been loaded
    assert marker.exists()
    marker.unlink()
    folder.mkdir(exist_ok=True)
    (folder / sandbox.LEGACY_STATE_FILE).write_bytes(payload)


def test_a_malicious_old_pickle_is_never_unpickled(folder: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    _plant_pickle(folder, marker)
    env = {**os.environ, sandbox.SANDBOX_DIR_ENV: str(folder), "PYTHONPATH": str(REPO)}
    run = subprocess.run(
        [sys.executable, "-m", "reconciler", "plan", "--sandbox", "--no-color"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert not marker.exists()
    assert run.returncode == 1, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in run.stderr, run.stderr
    assert lines[0].startswith("error: the sandbox state ")
    assert "kms-state.pickle" in lines[0] and f"delete the folder {folder}" in lines[0]
    assert sorted(os.listdir(folder)) == [sandbox.LEGACY_STATE_FILE]  # nothing written
    # beside a JSON state, the pickle is ignored (and still never loaded)
    assert cli("apply", "--auto-approve").exit_code == 1  # the same refusal in-process
    shutil.move(folder / sandbox.LEGACY_STATE_FILE, tmp_path / "old.pickle")
    assert cli("apply", "--auto-approve").exit_code == 0
    shutil.move(tmp_path / "old.pickle", folder / sandbox.LEGACY_STATE_FILE)
    result = cli("plan", "--detailed-exitcode")
    assert result.exit_code == 0 and "No changes." in result.stdout
    assert not marker.exists()


def _valid_document(folder: Path) -> dict[str, Any]:
    with sandbox_session():
        client = kms()
        key_id = client.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"][
            "KeyId"
        ]
        client.create_alias(AliasName="alias/signer", TargetKeyId=key_id)
        client.get_public_key(KeyId=key_id)  # the private key is made on first use
    document: dict[str, Any] = json.loads((folder / sandbox.STATE_FILE).read_text())
    assert _key(document)["private_key"] is not None
    return document


def _key(document: dict[str, Any]) -> dict[str, Any]:
    key: dict[str, Any] = document["backends"][0]["keys"][0]
    return key


def _other_kind_of_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    der = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return base64.b64encode(der).decode()


def _set(path: Callable[[dict[str, Any]], dict[str, Any]], name: str, value: Any) -> Any:
    def edit(document: dict[str, Any]) -> str:
        path(document)[name] = value
        return json.dumps(document)

    return edit


def _drop(path: Callable[[dict[str, Any]], dict[str, Any]], name: str) -> Any:
    def edit(document: dict[str, Any]) -> str:
        del path(document)[name]
        return json.dumps(document)

    return edit


def _top(document: dict[str, Any]) -> dict[str, Any]:
    return document


def _backend(document: dict[str, Any]) -> dict[str, Any]:
    backend: dict[str, Any] = document["backends"][0]
    return backend


def _truncated(document: dict[str, Any]) -> str:
    text = json.dumps(document, indent=1)
    return text[: len(text) // 2]


def _replace(old: str, new: str) -> Callable[[dict[str, Any]], str]:
    return lambda document: json.dumps(document).replace(old, new, 1)


Edit = Callable[[dict[str, Any]], "str | bytes"]
BAD_FILES: dict[str, tuple[Edit, str]] = {
    "empty": (lambda d: "", "not JSON"),
    "not JSON": (lambda d: "backends: [] # yaml?", "not JSON"),
    "truncated": (_truncated, "not JSON"),
    "non-UTF-8": (lambda d: b"\xff\xfe{}", "not UTF-8"),
    "a list": (lambda d: "[]", "a JSON list, not an object"),
    "null": (lambda d: "null", "a JSON NoneType, not an object"),
    "foreign JSON": (lambda d: '{"hello": "world"}', "not a kms-reconciler-sandbox state"),
    "newer version": (
        _set(_top, "format_version", 2),
        "format_version 2; this kms-reconciler reads 1",
    ),
    "version as a string": (_set(_top, "format_version", "1"), "format_version '1'"),
    "no backends": (_drop(_top, "backends"), "backends: Field required"),
    "backends not a list": (_set(_top, "backends", {}), "backends: Input should be a valid list"),
    "unknown field": (_set(_top, "pickle", "x"), "pickle: Extra inputs are not permitted"),
    "bad account": (_set(_backend, "account_id", "12"), "backends[0].account_id"),
    "unknown Region": (
        _set(_backend, "region", "xx-nowhere-9"),
        "moto knows no Region 'xx-nowhere-9'",
    ),
    "missing key field": (_drop(_key, "policy"), "backends[0].keys[0].policy: Field required"),
    "wrong type": (_set(_key, "enabled", "yes"), "enabled: Input should be a valid boolean"),
    "number as string": (_set(_key, "creation_date", "1700000000"), "keys[0].creation_date"),
    "tags not a mapping": (_set(_key, "tags", [["a", "b"]]), "keys[0].tags"),
    "bad base64": (_set(_key, "key_material", "not base64!"), "key_material: Value error"),
    "short key material": (_set(_key, "key_material", "AAAA"), "key_material: 3 bytes"),
    "private key not DER": (
        _set(_key, "private_key", "AAAA"),
        "private_key: not a PKCS#8 private key",
    ),
    "private key of another kind": (
        _set(_key, "private_key", _other_kind_of_key()),
        "RSA_2048 needs rsa 2048",
    ),
    "deletion date out of range": (_set(_key, "deletion_date", 1e300), "deletion_date"),
    "multi-Region flag without configuration": (_set(_key, "multi_region", True), "disagree"),
    "NaN": (
        _replace('"creation_date": ', '"creation_date": NaN, "x": '),
        "NaN is not a JSON number",
    ),
    "duplicate member": (
        _replace('"enabled": ', '"enabled": false, "enabled": '),
        "duplicate member 'enabled'",
    ),
    "nested too deeply": (lambda d: "[" * 100_000 + "]" * 100_000, "nested too deeply"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_an_unreadable_state_is_one_line_and_exit_1(folder: Path, case: str) -> None:
    make, why = BAD_FILES[case]
    content = make(_valid_document(folder))
    state = folder / sandbox.STATE_FILE
    if isinstance(content, str):
        state.write_text(content)
    else:
        state.write_bytes(content)
    written = state.read_bytes()

    line = assert_one_error_line(cli("plan"), why)
    assert line.startswith(f"error: the sandbox state {state} cannot be read (")
    assert line.endswith(f"); delete the folder {folder} to start an empty sandbox")
    assert state.read_bytes() == written  # never overwritten


def test_a_folder_where_the_state_file_should_be(folder: Path) -> None:
    (folder / sandbox.STATE_FILE).mkdir(parents=True)
    assert_one_error_line(cli("plan"), "cannot be read (", "Is a directory")


def test_an_oversized_state_is_refused_before_it_is_read(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _valid_document(folder)
    monkeypatch.setattr(sandbox, "MAX_STATE_BYTES", 100)
    assert_one_error_line(cli("plan"), "bytes, more than 100")


def test_a_private_key_that_fails_validation_on_first_use(folder: Path) -> None:
    document = _valid_document(folder)
    der = bytearray(base64.b64decode(_key(document)["private_key"]))
    der[-1] ^= 1  # the CRT coefficient: well-formed, but not a consistent RSA key
    _key(document)["private_key"] = base64.b64encode(bytes(der)).decode()
    (folder / sandbox.STATE_FILE).write_text(json.dumps(document))
    with sandbox_session():  # the structure loads; the key is validated when used
        client = kms()
        assert client.describe_key(KeyId="alias/signer")["KeyMetadata"]["KeySpec"] == "RSA_2048"
        with pytest.raises(AwsError, match=r"private key of key .*: not a PKCS#8 private key"):
            client.get_public_key(KeyId="alias/signer")


# -- writing ------------------------------------------------------------------------------


def test_a_crash_while_writing_leaves_the_previous_state(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli("apply", "--auto-approve", "--target", "staging").exit_code == 0
    state = folder / sandbox.STATE_FILE
    previous = state.read_bytes()
    real_dump = json.dump

    def crash(document: Any, fh: Any, **kwargs: Any) -> None:
        fh.write(json.dumps(document)[:100])  # half a file reached the disk
        raise KeyboardInterrupt

    monkeypatch.setattr(json, "dump", crash)
    with pytest.raises(KeyboardInterrupt), sandbox_session():
        kms("eu-west-1").create_key(Description="never saved")
    assert state.read_bytes() == previous
    assert sorted(os.listdir(folder)) == [sandbox.STATE_FILE]  # the temp file is gone
    monkeypatch.setattr(json, "dump", real_dump)
    result = cli("plan", "--target", "staging", "--detailed-exitcode")
    assert result.exit_code == 0 and "No changes." in result.stdout


def test_a_failed_write_is_one_line(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(src: Any, dst: Any) -> None:
        raise PermissionError(13, "Permission denied", str(dst))

    monkeypatch.setattr(os, "replace", refuse)
    line = assert_one_error_line(cli("apply", "--auto-approve", "--target", "staging"))
    assert "the sandbox state" in line and "cannot be written" in line
    assert line.endswith(f"{folder / sandbox.STATE_FILE} cannot be written (Permission denied)")
    assert not folder.exists() or os.listdir(folder) == []


def test_a_value_the_format_cannot_keep_is_one_line(folder: Path) -> None:
    from moto.kms.models import kms_backends

    saved = r"cannot be saved \(key .* description: Input should"
    with pytest.raises(AwsError, match=saved), sandbox_session():
        key_id = kms().create_key(Description="x")["KeyMetadata"]["KeyId"]
        kms_backends[ACCOUNT][REGION].keys[key_id].description = 42
    assert not (folder / sandbox.STATE_FILE).exists()
