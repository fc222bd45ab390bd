"""The DynamoDB service store keeps the watchlist, precovery and relay guarantees on moto's server."""

from __future__ import annotations

import pytest
from distribution_harness import create_service_table
from unit.distribution.store_extensions import ServiceStoreExtensions

from alertprod.distribution.store import DynamoServiceStore
from alertprod.local.dynamodb import moto_dynamodb

pytest.importorskip("moto")
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dynamodb():
    with moto_dynamodb() as client:
        yield client


class TestDynamoServiceStoreExtensions(ServiceStoreExtensions):
    @pytest.fixture
    def store(self, dynamodb):
        return DynamoServiceStore(dynamodb, create_service_table(dynamodb))
