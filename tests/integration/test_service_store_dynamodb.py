"""The DynamoDB service store passes the contract on moto's server, on a table built from the template."""

from __future__ import annotations

import pytest
from contract.service_store_contract import ServiceStoreContract
from distribution_harness import create_service_table

from alertprod.distribution.store import DynamoServiceStore
from alertprod.local.dynamodb import moto_dynamodb

pytest.importorskip("moto")
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dynamodb():
    with moto_dynamodb() as client:
        yield client


class TestDynamoServiceStore(ServiceStoreContract):
    @pytest.fixture
    def store(self, dynamodb):
        return DynamoServiceStore(dynamodb, create_service_table(dynamodb))


def test_token_items_hold_no_token(dynamodb):
    from alertprod.api.tokens import issue_token

    table = create_service_table(dynamodb)
    issued = issue_token(DynamoServiceStore(dynamodb, table), "alice")
    dump = str(dynamodb.scan(TableName=table)["Items"])
    assert issued.token not in dump and issued.record.token_hash in dump
