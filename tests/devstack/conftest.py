"""A scratch folder for the servers and stacks these tests start."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="agentlink-devstack-"))
    path.chmod(0o755)  # as root, postgres runs as `nobody` and must reach its data folder
    yield path
    shutil.rmtree(path, ignore_errors=True)
