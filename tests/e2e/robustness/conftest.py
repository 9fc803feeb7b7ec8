"""Fixtures of the fault, kill and concurrency tests: the fault injector in front of the
worker's moto_server, and a boto3 client the injector never touches (it overrides the e2e
``kms`` fixture here only)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ..conftest import MotoServer
from ..helpers import REGION
from .faults import FaultInjector, install, reader


@pytest.fixture(scope="session")
def _reader(moto_server: MotoServer) -> Any:
    return reader(moto_server.url, REGION)


@pytest.fixture
def kms(server: MotoServer, _reader: Any) -> Any:
    """The test's boto3 client, exempt from the injected faults (overrides conftest's)."""
    return _reader


@pytest.fixture
def faults(server: MotoServer) -> Iterator[FaultInjector]:
    with install(server) as injector:
        yield injector
