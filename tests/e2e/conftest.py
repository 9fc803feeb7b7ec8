"""End-to-end fixtures: one moto_server per xdist worker, the real CLI as a subprocess.

Every test gets:

- a freshly reset moto_server (``POST /moto-api/reset`` before the test) bound to
  127.0.0.1 on a free port, shared by the worker's tests;
- ``run_cli(*args)``: ``python -m reconciler ...`` in the test's tmp_path, with an
  environment that reaches only that server (``AWS_ENDPOINT_URL`` covers KMS and STS);
- ``kms``: a boto3 KMS client on the same server, for out-of-band changes and asserts;
- ``inventory``: writes ``keyspecs/`` (inventory.yaml, key files, policy templates);
- ``server.requests`` / ``server.kms_operations()``: every request the server answered
  during the test (to prove that a command made no call, or no write call);
- ``converge()``: the precondition "alpha and beta applied", via the same CLI run
  in-process (``run_cli_in_process``), which skips a subprocess's ~1 s start-up.

moto differs from real KMS in ways that matter here (see /work/shared/moto-kms-notes.md).
These are patched in-process, for the duration of each e2e test only (the server runs in
a thread of the test process, so the patch reaches it):

- section 9: moto drops ``RotationPeriodInDays``. Real KMS stores it and returns it from
  GetKeyRotationStatus whenever rotation is enabled (default 365).
- section 7 and 2: multi-Region keys. moto's replicas share state with their primary and
  ignore ReplicateKey's description, policy and tags; UpdatePrimaryRegion is missing.
  These two come from ``reconciler.moto_kms`` (the embedded sandbox's corrections).
- section 8/10: moto generates an unused RSA-2048 key in every CreateKey (~50 ms). The
  patch defers that until the private key is first used.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from .helpers import ACCOUNT, ALPHA, BETA, REGION, kms_client, managed_keys

REPO = Path(__file__).resolve().parents[2]
SAMPLE_KEYSPECS = REPO / "keyspecs"
CLI_TIMEOUT = 120


# -- moto_server --------------------------------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    target: str  # X-Amz-Target, e.g. "TrentService.CreateKey" ("" for query protocols)
    body: bytes

    @property
    def kms_operation(self) -> str | None:
        prefix = "TrentService."
        return self.target[len(prefix) :] if self.target.startswith(prefix) else None

    @property
    def lock_related(self) -> bool:
        """A call of the apply lock: its aliases, or the anchor key's making and tags."""
        text = self.body.decode("utf-8", "replace")
        return any(
            marker in text
            for marker in ("alias/kms-reconciler/", "kms-reconciler:lock-", "lock anchor")
        )


class _Recorder:
    """WSGI middleware in front of moto: remembers every request (not the moto-api ones)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests: list[Request] = []
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if not path.startswith("/moto-api"):
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
            environ["wsgi.input"] = io.BytesIO(body)
            with self._lock:
                self.requests.append(
                    Request(
                        environ.get("REQUEST_METHOD", ""),
                        path,
                        environ.get("HTTP_X_AMZ_TARGET", ""),
                        body,
                    )
                )
        return self.app(environ, start_response)

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()


@dataclass
class MotoServer:
    url: str
    recorder: _Recorder

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        self.recorder.clear()

    @property
    def requests(self) -> list[Request]:
        return list(self.recorder.requests)

    def kms_operations(self) -> list[str]:
        """The KMS operations of every request, but those of the apply lock (its anchor,
        alias and holder tags: see ``lock_operations``)."""
        return [op for r in self.requests if (op := r.kms_operation) and not r.lock_related]

    def lock_operations(self) -> list[str]:
        return [op for r in self.requests if (op := r.kms_operation) and r.lock_related]


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """One server per xdist worker (session scope is per worker process)."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one INFO line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    # werkzeug looks up ``server.app`` for every request, so the recorder sees them all.
    wsgi = server._server
    recorder = _Recorder(wsgi.app)
    wsgi.app = recorder
    try:
        yield MotoServer(f"http://{host}:{port}", recorder)
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _moto_patches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make moto closer to real KMS for the duration of one test (see the module doc)."""
    patch_moto(monkeypatch)


def patch_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    """The patches of ``_moto_patches``; also for a wider-scoped fixture's own setup,
    which runs before the function-scoped autouse fixture does."""
    import moto.kms.models as kms_models

    from reconciler import moto_kms

    real_generate = kms_models.generate_private_key

    class LazyPrivateKey:
        def __init__(self, key_spec: str) -> None:
            self._key_spec = key_spec
            self._key: Any = None

        def __getattr__(self, name: str) -> Any:
            if self._key is None:
                self._key = real_generate(self._key_spec)
            return getattr(self._key, name)

    monkeypatch.setattr(kms_models, "generate_private_key", LazyPrivateKey)

    # Multi-Region families (ReplicateKey, UpdatePrimaryRegion, shared rotation) and the
    # rotation period, as real KMS has them: the product's own moto corrections, the ones
    # the embedded sandbox runs with.
    moto_kms.apply(
        lambda owner, name, value: monkeypatch.setattr(owner, name, value, raising=False)
    )
    # GetKeyLastUsage: tracking "began" before any key a test makes, on any date
    monkeypatch.setattr(moto_kms, "TRACKING_BEGAN", datetime(2020, 1, 1, tzinfo=timezone.utc))


@pytest.fixture
def server(moto_server: MotoServer) -> MotoServer:
    """The worker's moto_server, reset: no keys, no aliases, no requests recorded."""
    moto_server.reset()
    return moto_server


# -- the CLI ------------------------------------------------------------------------------


@dataclass(repr=False)
class CliResult:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return (
            f"$ kms-reconciler {' '.join(self.args)}\n-> exit {self.returncode}\n"
            f"--- stdout\n{self.stdout}--- stderr\n{self.stderr}"
        )

    __repr__ = __str__  # pytest shows assertion messages with repr()


RunCli = Callable[..., CliResult]


def cli_env(home: Path, endpoint_url: str | None) -> dict[str, str]:
    """The subprocess environment: dummy credentials, no profile, no real AWS config."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "KMS_RECONCILER_", "BOTO_")) and k != "NO_COLOR"
    }
    env.update(
        {
            "HOME": str(home),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_MAX_ATTEMPTS": "1",
            "AWS_CONFIG_FILE": str(home / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-aws-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            # The tool paces calls to real KMS quotas (e.g. 4 CreateKey/s): lift that.
            "KMS_RECONCILER_QUOTA_SCALE": "1000",
        }
    )
    if endpoint_url is not None:
        env["AWS_ENDPOINT_URL"] = endpoint_url  # KMS and STS alike
    return env


def make_run_cli(cwd: Path, env: dict[str, str]) -> RunCli:
    def run_cli(*args: str, input: str | None = None, env_extra: dict[str, str] | None = None):
        completed = subprocess.run(
            [sys.executable, "-m", "reconciler", *args],
            cwd=cwd,
            env={**env, **(env_extra or {})},
            input=input,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
        )
        return CliResult(tuple(args), completed.returncode, completed.stdout, completed.stderr)

    return run_cli


@pytest.fixture
def cli_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    return home


@pytest.fixture
def run_cli(server: MotoServer, tmp_path: Path, cli_home: Path) -> RunCli:
    """Run ``python -m reconciler ARGS`` in tmp_path against this worker's moto_server."""
    return make_run_cli(tmp_path, cli_env(cli_home, server.url))


@pytest.fixture(scope="session")
def _kms_client(moto_server: MotoServer) -> Any:
    # One client per worker: building a client parses botocore's service model (~0.2 s).
    return kms_client(moto_server.url)


@pytest.fixture
def kms(server: MotoServer, _kms_client: Any) -> Any:
    """A boto3 KMS client on the (reset) server, for out-of-band changes and assertions."""
    return _kms_client


# -- the inventory ------------------------------------------------------------------------


class Inventory:
    """Writes ``keyspecs/`` under a folder: settings, one key file, the sample templates."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / "keyspecs"

    def write(
        self,
        keys: list[dict[str, Any]],
        *,
        account_id: str = ACCOUNT,
        region: str = REGION,
        settings: dict[str, Any] | None = None,
        raw_keys: str | None = None,
    ) -> Path:
        """(Re)write the inventory; ``raw_keys`` replaces the key file's YAML verbatim."""
        policies = self.path / "policies"
        policies.mkdir(parents=True, exist_ok=True)
        for template in (SAMPLE_KEYSPECS / "policies").glob("*.json.j2"):
            shutil.copy(template, policies / template.name)
        inventory = {
            "targets": [{"name": "test", "account_id": account_id, "region": region}],
            "defaults": {
                "tags": {"ManagedBy": "kms-reconciler"},
                "rotation": {"enabled": True, "period_days": 365},
            },
            **(settings or {}),
        }
        (self.path / "inventory.yaml").write_text(
            yaml.safe_dump(inventory, sort_keys=False), encoding="utf-8"
        )
        text = raw_keys if raw_keys is not None else yaml.safe_dump({"keys": keys}, sort_keys=False)
        (self.path / "keys.yaml").write_text(text, encoding="utf-8")
        return self.path


@pytest.fixture
def inventory(tmp_path: Path) -> Inventory:
    return Inventory(tmp_path)


def make_run_cli_in_process(cwd: Path, env: dict[str, str]) -> RunCli:
    """The same CLI (``reconciler.cli.main``), run in this process with click's CliRunner.

    Only for preconditions ("given a converged account"): it skips the ~1 s interpreter
    and import start-up of a subprocess, which keeps the suite within its time budget.
    What a test asserts always comes from ``run_cli`` (a real subprocess).
    """

    def run(*args: str, input: str | None = None) -> CliResult:
        from click.testing import CliRunner

        from reconciler.cli import main

        # Hide this process's own AWS settings; the CLI sees exactly the subprocess env.
        overrides: dict[str, str | None] = {
            k: None for k in os.environ if k.startswith(("AWS_", "KMS_RECONCILER_", "BOTO_"))
        }
        overrides.update(
            {k: v for k, v in env.items() if k.startswith(("AWS_", "KMS_RECONCILER_"))}
        )
        overrides["HOME"] = env["HOME"]
        previous = os.getcwd()
        os.chdir(cwd)
        try:
            result = CliRunner().invoke(main, list(args), input=input, env=overrides)
        finally:
            os.chdir(previous)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return CliResult(tuple(args), result.exit_code, result.stdout, result.stderr)

    return run


Converge = Callable[..., dict[str, str]]


@pytest.fixture
def run_cli_in_process(server: MotoServer, tmp_path: Path, cli_home: Path) -> RunCli:
    """Like ``run_cli`` but in this process: for preconditions and repeated re-checks only."""
    return make_run_cli_in_process(tmp_path, cli_env(cli_home, server.url))


@pytest.fixture
def converge(
    inventory: Inventory, server: MotoServer, run_cli_in_process: RunCli, kms: Any
) -> Converge:
    """Write the inventory and apply it (in-process CLI).

    Returns {key name: key id} of the managed keys. The requests it made are forgotten,
    so ``server.requests`` shows only what the test itself caused. (That an apply
    converges, i.e. that a re-plan says "No changes.", is test_lifecycle's job.)
    """
    run = run_cli_in_process

    def converge_(keys: list[dict[str, Any]] | None = None, **write: Any) -> dict[str, str]:
        inventory.write(keys if keys is not None else [ALPHA, BETA], **write)
        applied = run("apply", "--auto-approve")
        assert applied.returncode == 0, applied
        server.recorder.clear()
        return managed_keys(kms)

    return converge_


# The slowest e2e tests first: xdist hands tests out in collection order, so a long test
# picked up last would leave the other worker idle at the end.
_SLOW_FIRST = ("test_bundled_sample_in_the_sandbox",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: getattr(item, "originalname", item.name) not in _SLOW_FIRST)
