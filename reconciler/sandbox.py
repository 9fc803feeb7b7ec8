"""The embedded sandbox: moto's KMS in-process, its state kept in a local folder.

A newcomer with no AWS account runs plan -> apply -> plan -> drift with ``--sandbox``;
each invocation loads the state the previous one saved. moto runs with the corrections of
``reconciler.moto_kms`` (multi-Region keys, rotation period), so the sandbox behaves like
real KMS where the tool depends on it.

The state is data, never code: one JSON document, ``kms-state.json`` in ``.kms-sandbox/``
(or ``$KMS_RECONCILER_SANDBOX_DIR``). The folder may sit in an untrusted checkout, so the
file is read as hostile input: parsed as JSON (no duplicate members, no NaN), size-capped,
validated strictly (pydantic, strict types, no unknown fields), and only then turned back
into moto's objects, field by field. Any problem is one line: the file cannot be read,
delete the folder. It is written atomically (a temporary file in the same folder, flushed,
then ``os.replace``), so a crash mid-write leaves the previous state readable.

Format (``format_version`` 1)::

    {"format": "kms-reconciler-sandbox", "format_version": 1, "moto_version": "5.2.5",
     "backends": [{"account_id": "111122223333", "region": "us-east-1", "keys": [KEY, ...]}]}

where each KEY holds moto's ``Key`` attributes under their moto names (``id``, ``arn``,
``creation_date`` and ``deletion_date`` as Unix seconds, ``policy``, ``key_usage``,
``key_spec``, ``origin``, ``key_manager``, ``description``, ``enabled``, ``key_state``,
``multi_region``, ``multi_region_configuration``, ``key_rotation_status``,
``rotation_period_days`` and ``last_usage`` (``reconciler.moto_kms``: the last
cryptographic use, for GetKeyLastUsage; optional), ``rotations``), plus ``key_material``
(base64), ``private_key`` (base64 PKCS#8 DER, or null while the key has none: one is
made on first use), ``tags`` (from the backend's tagger, in order), ``aliases`` and
``grants``. ``moto_version`` is informational: the document holds
only KMS data, so a state written under one moto 5.x release loads under another.

Loading is fast because nothing is generated and the slow work is deferred: keys are
rebuilt without ``Key.__init__`` (which would generate an RSA key), and a private key is
only checked for its type and size at load; the full validation by ``cryptography``
(~30 ms for RSA) runs on first use, for the keys that are used (the tool itself never
uses them: plan and apply make no cryptographic calls). Saving reuses the DER of keys that were
never touched. CreateKey in the sandbox makes no private key either (moto would generate
an RSA-2048 one even for a symmetric key): it is made on first use (Sign, Verify,
GetPublicKey), so symmetric keys never carry one. States written before (every key with a
private key) load unchanged. An old ``kms-state.pickle`` (before format 1) is never
unpickled: the run stops with one line that says to delete the folder.

moto's in-process backends are not thread-safe, and the applier works on independent keys
side by side: in the sandbox, moto serves one request at a time.
"""

from __future__ import annotations

import base64
import binascii
import gc
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer
from pydantic import ValidationError as PydanticValidationError

from reconciler import catalog
from reconciler.errors import AwsError

SANDBOX_DIR_ENV = "KMS_RECONCILER_SANDBOX_DIR"
STATE_FILE = "kms-state.json"
LEGACY_STATE_FILE = "kms-state.pickle"
FORMAT: Final = "kms-reconciler-sandbox"
FORMAT_VERSION: Final = 1
# ~2.6 KB a key: room for ~25,000 keys, and a bound on what a hostile file can cost.
MAX_STATE_BYTES = 64 * 1024 * 1024

# The private key moto generates for each key spec (moto.kms.utils.generate_private_key):
# ("rsa", bits) or ("ec", curve name); every other spec gets RSA 2048.
_PRIVATE_KEY_KIND: dict[str, tuple[str, int | str]] = {
    "RSA_2048": ("rsa", 2048),
    "RSA_3072": ("rsa", 3072),
    "RSA_4096": ("rsa", 4096),
    "ECC_NIST_P256": ("ec", "secp256r1"),
    "ECC_SECG_P256K1": ("ec", "secp256k1"),
    "ECC_NIST_P384": ("ec", "secp384r1"),
    "ECC_NIST_P521": ("ec", "secp521r1"),
}
_DEFAULT_PRIVATE_KEY_KIND: tuple[str, int | str] = ("rsa", 2048)
# moto's ECDSAPrivateKey.valid_signing_algorithms, by curve.
_EC_SIGNING = {
    "secp256r1": "ECDSA_SHA_256",
    "secp256k1": "ECDSA_SHA_256",
    "secp384r1": "ECDSA_SHA_384",
    "secp521r1": "ECDSA_SHA_512",
}


def sandbox_dir() -> Path:
    return Path(os.environ.get(SANDBOX_DIR_ENV, ".kms-sandbox"))


# -- the file format ----------------------------------------------------------------------


def _from_base64(value: Any) -> Any:
    if isinstance(value, bytes):  # building the document from moto's objects
        return value
    if not isinstance(value, str):
        raise ValueError("must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"not base64 ({exc})") from None


def _to_base64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


Base64 = Annotated[
    bytes, BeforeValidator(_from_base64), PlainSerializer(_to_base64, return_type=str)
]
NonEmpty = Annotated[str, Field(min_length=1)]


# moto's key_material by key spec: AES keys it makes (16 to 32 bytes), and the raw
# material KMS imports into HMAC keys (catalog.RAW_MATERIAL_LENGTHS).
_MATERIAL_BYTES: dict[str, tuple[int, int]] = {
    spec: (min(16, low), max(32, high))
    for spec, (low, high) in catalog.RAW_MATERIAL_LENGTHS.items()
}


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


class _RegionRef(_Model):
    Arn: NonEmpty
    Region: NonEmpty


class _MultiRegionConfiguration(_Model):
    MultiRegionKeyType: Literal["PRIMARY", "REPLICA"]
    PrimaryKey: _RegionRef
    ReplicaKeys: list[_RegionRef]


class _Rotation(_Model):
    KeyId: NonEmpty
    RotationDate: float
    RotationType: NonEmpty


class _Alias(_Model):
    name: Annotated[str, Field(pattern=r"^alias/.+")]
    arn: NonEmpty


class _Grant(_Model):
    id: NonEmpty
    token: NonEmpty
    name: str | None
    grantee_principal: str | None
    retiring_principal: str | None
    operations: list[str] | None
    constraints: dict[str, Any] | None


class _LastUsage(_Model):
    """A key's last cryptographic use (``reconciler.moto_kms``, for GetKeyLastUsage)."""

    Operation: NonEmpty
    Timestamp: float
    CloudTrailEventId: NonEmpty
    KmsRequestId: NonEmpty


class _Material(_Model):
    """One version of an EXTERNAL key's imported material (``reconciler.moto_import``)."""

    id: NonEmpty
    description: str | None
    data: Base64 | None  # None: deleted (DeleteImportedKeyMaterial)
    state: Literal["CURRENT", "NON_CURRENT", "PENDING_ROTATION"]
    expiration_model: NonEmpty
    valid_to: float | None = None
    rotation_date: float | None = None


class _Key(_Model):
    id: NonEmpty
    arn: NonEmpty
    creation_date: float
    description: str
    policy: str
    key_usage: str | None  # moto keeps None when CreateKey had no KeyUsage
    key_spec: NonEmpty
    origin: str
    key_manager: str
    enabled: bool
    key_state: NonEmpty
    deletion_date: float | None
    multi_region: bool | None  # None: CreateKey had no MultiRegion
    multi_region_configuration: _MultiRegionConfiguration | None
    key_rotation_status: bool
    rotation_period_days: int | None
    rotations: list[_Rotation]
    key_material: Base64
    private_key: Base64 | None
    tags: dict[str, str | None]
    aliases: list[_Alias]
    grants: list[_Grant]
    last_usage: _LastUsage | None = None  # absent in states saved before it was recorded
    # Absent in states saved before the sandbox imported material or knew key stores.
    materials: list[_Material] = []
    custom_key_store_id: str | None = None
    xks_key_id: str | None = None


class _Backend(_Model):
    account_id: Annotated[str, Field(pattern=r"^[0-9]{12}$")]
    region: Annotated[str, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]+$")]
    keys: list[_Key]


class _State(_Model):
    format: Literal["kms-reconciler-sandbox"]
    format_version: Literal[1]
    moto_version: str
    backends: list[_Backend]


class _Unreadable(Exception):
    """The state file is not a state this version can load; the message says why."""


def _unreadable(path: Path, why: str) -> AwsError:
    return AwsError(
        f"the sandbox state {path} cannot be read ({why}); delete the folder "
        f"{path.parent} to start an empty sandbox"
    )


# -- private keys -------------------------------------------------------------------------


def _der_of(private_key: Any) -> bytes | None:
    """PKCS#8 DER of one of moto's private-key wrappers; None for a kind this module does
    not know (a newer moto's), which is then generated afresh on first use after a load."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if isinstance(private_key, _SavedPrivateKey):
        return private_key.der
    inner = getattr(private_key, "private_key", None)
    if not isinstance(inner, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        return None
    return inner.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _parse_der(der: bytes, key_spec: str, *, validate: bool) -> Any:
    """The ``cryptography`` key in ``der``, checked to be what moto makes for ``key_spec``.

    ``validate=False`` skips RSA's slow consistency check (~30 ms): fine to inspect type
    and size, but such a key is never used, since ``cryptography`` warns that an invalid
    one may misbehave; a key is parsed again with ``validate=True`` before its first use.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    try:
        key = serialization.load_der_private_key(
            der, password=None, unsafe_skip_rsa_key_validation=not validate
        )
    except (ValueError, TypeError) as exc:
        raise _Unreadable(f"not a PKCS#8 private key: {exc}") from None
    kind, size = _PRIVATE_KEY_KIND.get(key_spec, _DEFAULT_PRIVATE_KEY_KIND)
    if isinstance(key, rsa.RSAPrivateKey):
        found: tuple[str, int | str] = ("rsa", key.key_size)
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        found = ("ec", key.curve.name)
    else:
        found = (type(key).__name__, "")
    if found != (kind, size):
        raise _Unreadable(f"a {found[0]} {found[1]} key, {key_spec} needs {kind} {size}")
    return key


def _moto_wrapper(key: Any) -> Any:
    """moto's wrapper (``moto.kms.utils``) around a ``cryptography`` private key, made
    without its ``__init__`` (which generates a key)."""
    from cryptography.hazmat.primitives.asymmetric import rsa
    from moto.kms import utils

    wrapper: Any
    if isinstance(key, rsa.RSAPrivateKey):
        wrapper = utils.RSAPrivateKey.__new__(utils.RSAPrivateKey)
        wrapper.key_size = key.key_size
    else:
        wrapper = utils.ECDSAPrivateKey.__new__(utils.ECDSAPrivateKey)
        wrapper.valid_signing_algorithms = [_EC_SIGNING[key.curve.name]]
    wrapper.private_key = key
    return wrapper


class _SavedPrivateKey:
    """A key's private key from the state file, made into moto's object on first use.

    moto calls ``sign``, ``verify`` and ``public_key``; anything else is passed through.
    ``der is None`` means no private key yet: CreateKey in the sandbox makes none (see
    ``_generated_on_first_use``), or the file had one of a kind this module does not know.
    moto's generator makes it on first use, as CreateKey would have; from then on it is
    saved with the key.
    """

    def __init__(
        self, der: bytes | None, key_spec: str, path: Path | None = None, key_id: str = ""
    ) -> None:
        self.der = der
        self._key_spec = key_spec
        self._path = path
        self._key_id = key_id
        self._real: Any = None

    def _load(self) -> Any:
        if self._real is None:
            if self.der is None:
                from moto.kms.utils import generate_private_key

                self._real = generate_private_key(self._key_spec)
                self.der = _der_of(self._real)
            else:
                try:
                    key = _parse_der(self.der, self._key_spec, validate=True)
                except _Unreadable as exc:
                    assert self._path is not None  # DER comes only from a state file
                    raise _unreadable(
                        self._path, f"private key of key {self._key_id}: {exc}"
                    ) from None
                self._real = _moto_wrapper(key)
        return self._real

    def sign(self, message: bytes, signing_algorithm: str) -> bytes:
        signature: bytes = self._load().sign(message, signing_algorithm)
        return signature

    def verify(self, message: bytes, signature: bytes, signing_algorithm: str) -> bool:
        return bool(self._load().verify(message, signature, signing_algorithm))

    def public_key(self) -> bytes:
        public: bytes = self._load().public_key()
        return public

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._load(), name)


# -- moto's backends <-> the document -----------------------------------------------------


def _unix_time(value: datetime | None) -> float | None:
    if value is None:
        return None
    from moto.core.utils import unix_time

    return float(unix_time(value))


def _datetime(seconds: float) -> datetime:
    """A datetime as moto keeps it (naive UTC in moto 5.2) from Unix seconds."""
    from moto.core.utils import utcnow

    value = datetime.fromtimestamp(seconds, timezone.utc)
    return value.replace(tzinfo=None) if utcnow().tzinfo is None else value


def _snapshot_key(backend: Any, key: Any) -> _Key:
    config = key.multi_region_configuration if key.multi_region else None
    if key.multi_region and isinstance(key.private_key, _SavedPrivateKey):
        # the members of a family share one private key object (ReplicateKey copies the
        # key); made now, it is saved with each, so they still share it after a load
        key.private_key._load()
    return _Key(
        id=key.id,
        arn=key.arn,
        creation_date=float(key.creation_date),
        description=key.description,
        policy=key.policy,
        key_usage=key.key_usage,
        key_spec=key.key_spec,
        origin=key.origin,
        key_manager=key.key_manager,
        enabled=key.enabled,
        key_state=key.key_state,
        deletion_date=_unix_time(key.deletion_date),
        multi_region=key.multi_region,
        multi_region_configuration=(
            None if config is None else _MultiRegionConfiguration.model_validate(config)
        ),
        key_rotation_status=bool(key.key_rotation_status),
        rotation_period_days=getattr(key, "rotation_period_days", None),
        rotations=[
            _Rotation(
                KeyId=r["KeyId"],
                RotationDate=float(r["RotationDate"]),
                RotationType=r["RotationType"],
            )
            for r in key.rotations
        ],
        key_material=key.key_material,
        private_key=_der_of(key.private_key),
        tags=backend.tagger.get_tag_dict_for_resource(key.id),
        aliases=[_Alias(name=name, arn=alias.alias_arn) for name, alias in key.aliases.items()],
        grants=[
            _Grant(
                id=grant.id,
                token=grant.token,
                name=grant.name,
                grantee_principal=grant.grantee_principal,
                retiring_principal=grant.retiring_principal,
                operations=grant.operations,
                constraints=grant.constraints,
            )
            for grant in key.grants.values()
        ],
        last_usage=getattr(key, "last_usage", None),
        materials=[_Material.model_validate(m) for m in getattr(key, "materials", None) or ()],
        custom_key_store_id=getattr(key, "custom_key_store_id", None),
        xks_key_id=getattr(key, "xks_key_id", None),
    )


def _snapshot(kms_backends: Any) -> _State:
    """The document for every (account, Region) backend that holds keys."""
    import moto

    backends = []
    for account, regions in kms_backends.items():
        for region, backend in regions.items():
            if not backend.keys:
                continue
            keys = []
            for key in backend.keys.values():
                try:
                    keys.append(_snapshot_key(backend, key))
                except PydanticValidationError as exc:  # moto holds what the format cannot
                    raise AwsError(
                        f"the sandbox state cannot be saved (key {key.id} in {account} "
                        f"{region}: {_describe(exc)})"
                    ) from None
            backends.append(_Backend(account_id=account, region=region, keys=keys))
    return _State(
        format=FORMAT,
        format_version=FORMAT_VERSION,
        moto_version=moto.__version__,
        backends=backends,
    )


def _restore(state: _State, kms_backends: Any, path: Path) -> None:
    """Put the document's keys into moto's (empty) backends. Raises _Unreadable."""
    from moto.kms import models

    # moto's classes, typed loosely: attributes are set here as moto's __init__ would
    key_class: Any = models.Key
    alias_class: Any = models.Alias
    grant_class: Any = models.Grant
    for b, saved in enumerate(state.backends):
        where = f"backends[{b}]"
        try:
            backend = kms_backends[saved.account_id][saved.region]
        except KeyError:
            raise _Unreadable(f"{where}: moto knows no Region {saved.region!r}") from None
        if backend.keys:
            raise _Unreadable(f"{where}: {saved.account_id}/{saved.region} appears twice")
        aliases: set[str] = set()
        for k, s in enumerate(saved.keys):
            at = f"{where}.keys[{k}]"
            if s.id in backend.keys:
                raise _Unreadable(f"{at}: key ID {s.id} appears twice")
            if bool(s.multi_region) != (s.multi_region_configuration is not None):
                raise _Unreadable(f"{at}: multi_region and multi_region_configuration disagree")
            low, high = _MATERIAL_BYTES.get(s.key_spec, (16, 32))
            if not low <= len(s.key_material) <= high:
                raise _Unreadable(
                    f"{at}.key_material: {len(s.key_material)} bytes, not a {s.key_spec} key"
                )
            if s.private_key is not None:
                try:
                    _parse_der(s.private_key, s.key_spec, validate=False)
                except _Unreadable as exc:
                    raise _Unreadable(f"{at}.private_key: {exc}") from None
            key = key_class.__new__(key_class)  # no __init__: it would generate an RSA key
            key.id = s.id
            key.arn = s.arn
            key.account_id = saved.account_id
            key.region = saved.region
            key.creation_date = s.creation_date
            key.description = s.description
            key.policy = s.policy
            key.key_usage = s.key_usage
            key.key_spec = s.key_spec
            key.origin = s.origin
            key.key_manager = s.key_manager
            key.enabled = s.enabled
            key.key_state = s.key_state
            try:
                key.deletion_date = None if s.deletion_date is None else _datetime(s.deletion_date)
            except (ValueError, OverflowError, OSError) as exc:
                raise _Unreadable(f"{at}.deletion_date: {exc}") from None
            key.multi_region = s.multi_region
            if s.multi_region_configuration is not None:
                key.multi_region_configuration = s.multi_region_configuration.model_dump()
            key.key_rotation_status = s.key_rotation_status
            key.rotation_period_days = s.rotation_period_days
            key.rotations = [r.model_dump() for r in s.rotations]
            if s.last_usage is not None:
                key.last_usage = s.last_usage.model_dump()
            key.materials = [m.model_dump() for m in s.materials]
            key.custom_key_store_id = s.custom_key_store_id
            key.xks_key_id = s.xks_key_id
            key.key_material = s.key_material
            key.private_key = _SavedPrivateKey(s.private_key, s.key_spec, path, s.id)
            key.grants = {}
            for grant in s.grants:
                restored = grant_class(
                    s.id,
                    grant.name,
                    grant.grantee_principal,
                    None if grant.operations is None else list(grant.operations),
                    constraints=grant.constraints,
                    retiring_principal=grant.retiring_principal,
                )
                restored.id = grant.id
                restored.token = grant.token
                key.grants[grant.id] = restored
            key.aliases = {}
            for alias in s.aliases:
                if alias.name in aliases:
                    raise _Unreadable(f"{at}: alias {alias.name} appears twice")
                aliases.add(alias.name)
                restored_alias = alias_class(saved.account_id, saved.region, alias.name, key)
                restored_alias.alias_arn = alias.arn
                key.aliases[alias.name] = restored_alias
            backend.keys[s.id] = key
            if s.tags:
                backend.tagger.tag_resource(
                    s.id,
                    [
                        {"TagKey": name} if value is None else {"TagKey": name, "TagValue": value}
                        for name, value in s.tags.items()
                    ],
                )


# -- reading and writing the file ---------------------------------------------------------


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in pairs:
        if name in out:
            raise _Unreadable(f"duplicate member {name!r}")
        out[name] = value
    return out


def _no_constant(name: str) -> Any:
    raise _Unreadable(f"{name} is not a JSON number")


def _describe(error: PydanticValidationError) -> str:
    first = error.errors(include_url=False, include_input=False)[0]
    loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
    more = error.error_count() - 1
    tail = f" (and {more} more)" if more else ""
    return f"{loc.lstrip('.') or 'document'}: {first['msg']}{tail}"


def read_state(path: Path) -> tuple[_State, Any]:
    """The validated document in ``path`` and its parsed JSON. Raises _Unreadable."""
    try:
        size = path.stat().st_size
        if size > MAX_STATE_BYTES:
            raise _Unreadable(f"{size} bytes, more than {MAX_STATE_BYTES}")
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise _Unreadable(exc.strerror or str(exc)) from None
    except UnicodeDecodeError as exc:
        raise _Unreadable(f"not UTF-8: {exc}") from None
    try:
        raw = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except ValueError as exc:  # JSONDecodeError
        raise _Unreadable(f"not JSON: {exc}") from None
    except RecursionError:
        raise _Unreadable("not JSON: nested too deeply") from None
    if not isinstance(raw, dict):
        raise _Unreadable(f"a JSON {type(raw).__name__}, not an object")
    if raw.get("format") != FORMAT:
        raise _Unreadable(f"not a {FORMAT} state: 'format' is {raw.get('format')!r}")
    version = raw.get("format_version")
    if version != FORMAT_VERSION:
        raise _Unreadable(f"format_version {version!r}; this kms-reconciler reads {FORMAT_VERSION}")
    try:
        return _State.model_validate(raw), raw
    except PydanticValidationError as exc:
        raise _Unreadable(_describe(exc)) from None


def write_state(path: Path, document: dict[str, Any]) -> None:
    """Write ``document`` to ``path`` atomically: readers see the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(document, fh, indent=1, ensure_ascii=False, allow_nan=False)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise


def load_into(path: Path, kms_backends: Any) -> Any:
    """Load the state in ``path`` (if any) into moto's backends; returns the parsed JSON
    (None without a file), so that an unchanged state is not written again."""
    legacy = path.with_name(LEGACY_STATE_FILE)
    if not path.exists() and not path.is_symlink():
        if legacy.exists() or legacy.is_symlink():
            raise AwsError(
                f"the sandbox state {legacy} is a pickle from an older kms-reconciler and is "
                f"never loaded (unpickling can run code); delete the folder {path.parent} "
                "to start an empty sandbox"
            )
        return None
    try:
        state, raw = read_state(path)
        _restore(state, kms_backends, path)
    except _Unreadable as exc:
        raise _unreadable(path, str(exc)) from None
    return raw


def save_from(path: Path, kms_backends: Any, loaded: Any = None) -> None:
    """Write moto's backends to ``path``, unless they hold exactly what was ``loaded``."""
    document = _snapshot(kms_backends).model_dump(mode="json")
    if document == loaded:
        return
    try:
        write_state(path, document)
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise AwsError(f"the sandbox state {path} cannot be written ({why})") from None


@contextmanager
def embedded_kms() -> Iterator[Path]:
    """moto's mock of AWS for the block, with the KMS state loaded before and saved after."""
    try:
        from moto import mock_aws
        from moto.kms.models import kms_backends
    except ImportError:
        raise AwsError("--sandbox needs moto: pip install 'kms-reconciler[sandbox]'") from None
    from reconciler import moto_kms

    if gc.get_freeze_count():  # the CLI froze its imports (it is the whole process): moto's
        gc.freeze()  # too, out of the collector's passes (~0.1 s of a no-op plan's ~1.7 s)
    folder = sandbox_dir()
    path = folder / STATE_FILE
    with mock_aws(), moto_kms.patched(), _one_request_at_a_time(), _generated_on_first_use():
        loaded = load_into(path, kms_backends)
        try:
            yield folder
        finally:
            save_from(path, kms_backends, loaded)


@contextmanager
def _generated_on_first_use() -> Iterator[None]:
    """CreateKey makes no private key; it is made on first use (Sign, Verify, GetPublicKey).

    moto generates one for every key, RSA-2048 for symmetric and HMAC keys too, which never
    use it (~50 ms a key, ~0.5 s for RSA_4096; most of an apply's time), and the state then
    carries ~1.2 KB of DER a key for nothing. The key that comes on first use is of the kind
    moto's CreateKey would have made, and is saved with the key from then on.
    """
    from moto.kms import models

    generate = models.__dict__["generate_private_key"]

    def later(key_spec: str) -> _SavedPrivateKey:
        return _SavedPrivateKey(None, key_spec)

    setattr(models, "generate_private_key", later)  # noqa: B010 - moto does not export it
    try:
        yield
    finally:
        setattr(models, "generate_private_key", generate)  # noqa: B010


@contextmanager
def _one_request_at_a_time() -> Iterator[None]:
    """moto's in-process requests one after another.

    moto's backends are not thread-safe (CreateAlias iterates over every key while a
    concurrent CreateKey adds one: "dictionary changed size during iteration"), and the
    applier runs independent keys side by side. Real KMS serves concurrent calls; here they
    take turns, which costs little: moto is pure Python under the GIL anyway.
    """
    from moto.core.models import botocore_stubber

    own = botocore_stubber.__dict__.get("process_request")
    process = botocore_stubber.process_request
    lock = threading.Lock()

    def one_at_a_time(request: Any) -> Any:
        with lock:
            return process(request)

    botocore_stubber.process_request = one_at_a_time  # type: ignore[method-assign]
    try:
        yield
    finally:
        if own is None:
            del botocore_stubber.process_request
        else:
            botocore_stubber.process_request = own  # type: ignore[method-assign]
