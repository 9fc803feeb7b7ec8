"""The embedded sandbox: moto's KMS in-process, its state kept in a local folder.

A newcomer with no AWS account runs plan -> apply -> plan -> drift with ``--sandbox``;
each invocation loads the state the previous one saved. The state of every (account,
Region) is a pickle of moto's KMS backend in ``.kms-sandbox/`` (or
``$KMS_RECONCILER_SANDBOX_DIR``), written and read only by this tool on this machine.
moto's private keys are ``cryptography`` objects, pickled as DER. moto runs with the
corrections of ``reconciler.moto_kms`` (multi-Region keys, rotation period), so the
sandbox behaves like real KMS where the tool depends on it.
"""

from __future__ import annotations

import copyreg
import os
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from reconciler.errors import AwsError

SANDBOX_DIR_ENV = "KMS_RECONCILER_SANDBOX_DIR"
STATE_FILE = "kms-state.pickle"
STATE_VERSION = 1


def sandbox_dir() -> Path:
    return Path(os.environ.get(SANDBOX_DIR_ENV, ".kms-sandbox"))


def _load_private_key(der: bytes) -> Any:
    from cryptography.hazmat.primitives import serialization

    return serialization.load_der_private_key(der, password=None)


def _reduce_private_key(key: Any) -> tuple[Any, tuple[bytes]]:
    from cryptography.hazmat.primitives import serialization

    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return _load_private_key, (der,)


def _register_reducers() -> None:
    """Teach pickle the concrete (Rust-backed) private key classes of ``cryptography``."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    samples = (
        rsa.generate_private_key(public_exponent=65537, key_size=1024),
        ec.generate_private_key(ec.SECP256R1()),
        ed25519.Ed25519PrivateKey.generate(),
    )
    for sample in samples:
        copyreg.pickle(type(sample), _reduce_private_key)


@contextmanager
def embedded_kms() -> Iterator[Path]:
    """moto's mock of AWS for the block, with the KMS state loaded before and saved after."""
    try:
        from moto import mock_aws
        from moto.kms.models import kms_backends
    except ImportError:
        raise AwsError("--sandbox needs moto: pip install 'kms-reconciler[sandbox]'") from None
    from reconciler import moto_kms

    _register_reducers()
    folder = sandbox_dir()
    path = folder / STATE_FILE
    with mock_aws(), moto_kms.patched():
        if path.is_file():
            try:
                with path.open("rb") as fh:
                    saved = pickle.load(fh)
            except (OSError, pickle.UnpicklingError, EOFError, AttributeError) as exc:
                raise AwsError(
                    f"the sandbox state {path} cannot be read ({exc}); delete the folder "
                    f"{folder} to start an empty sandbox"
                ) from None
            if saved.get("version") == STATE_VERSION:
                for (account, region), backend in saved["backends"].items():
                    kms_backends[account][region] = backend
        try:
            yield folder
        finally:
            backends = {
                (account, region): backend
                for account, regions in kms_backends.items()
                for region, backend in regions.items()
                if backend.keys
            }
            folder.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            with tmp.open("wb") as fh:
                pickle.dump({"version": STATE_VERSION, "backends": backends}, fh)
            tmp.replace(path)
