"""The in-memory service store passes the service-store contract."""

from __future__ import annotations

import pytest
from contract.service_store_contract import ServiceStoreContract

from alertprod.distribution.store import MemoryServiceStore

pytestmark = pytest.mark.unit


class TestMemoryServiceStore(ServiceStoreContract):
    @pytest.fixture
    def store(self):
        return MemoryServiceStore()
