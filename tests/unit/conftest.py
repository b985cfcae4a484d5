"""Fixtures only the unit tests use: a node API and a master's site API, both in process.

The helpers behind them (tests.support.api_node, tests.support.site_api) are imported by the
tests that build their own apps; the fixtures are registered here once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.api_node import Node, open_node
from tests.support.site_api import Site, open_site


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    """A node API over a store of real segments for cam-1 (tests.support.api_node.open_node)."""
    with open_node(tmp_path) as state:
        yield state


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """rec-2 down and covered by spare-1, seen through the master's site API
    (tests.support.site_api.open_site)."""
    with open_site(tmp_path) as state:
        yield state
