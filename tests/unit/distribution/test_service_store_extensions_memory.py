"""The in-memory service store keeps the watchlist, precovery and relay guarantees."""

from __future__ import annotations

import pytest
from unit.distribution.store_extensions import ServiceStoreExtensions

from alertprod.distribution.store import MemoryServiceStore

pytestmark = pytest.mark.unit


class TestMemoryServiceStoreExtensions(ServiceStoreExtensions):
    @pytest.fixture
    def store(self):
        return MemoryServiceStore()
