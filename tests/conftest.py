from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite the golden files under tests/golden/ from the current output",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of the bundled inventory in tmp_path (the working directory), with the
    embedded sandbox's state kept there too, and no retry settings from the environment."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KMS_RECONCILER_SANDBOX_DIR", str(tmp_path / ".kms-sandbox"))
    for name in (
        "AWS_MAX_ATTEMPTS",
        "AWS_RETRY_MODE",
        "KMS_RECONCILER_QUOTA_SCALE",
        "KMS_RECONCILER_REQUEST_PATH",
    ):
        monkeypatch.delenv(name, raising=False)
    shutil.copytree(REPO / "keyspecs", tmp_path / "keyspecs")
    yield tmp_path


@pytest.fixture
def fake_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy AWS credentials and no profile or endpoint from the environment: for moto
    in-process (``mock_aws``), so that nothing can reach a real AWS endpoint."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_KMS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
