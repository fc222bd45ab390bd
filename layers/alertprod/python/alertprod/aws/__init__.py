"""boto3 adapters: the only modules that import boto3. Each adapter takes an injected client.

- :class:`BlobStore` (protocol), :class:`S3BlobStore`, :class:`MemoryBlobStore`: objects
- :class:`SnsTopic`: publish with attributes, subscribe queues; :class:`SqsQueue`: create,
  send / receive / delete
- :func:`make_clients`: configured boto3 clients; :class:`Services`: everything a handler needs
"""

from alertprod.aws.blobs import BlobStore, MemoryBlobStore
from alertprod.aws.clients import AwsClients, make_clients
from alertprod.aws.s3 import S3BlobStore
from alertprod.aws.services import Services
from alertprod.aws.sns import SnsTopic, message_attributes
from alertprod.aws.sqs import SqsMessage, SqsQueue

__all__ = [
    "AwsClients",
    "BlobStore",
    "MemoryBlobStore",
    "S3BlobStore",
    "Services",
    "SnsTopic",
    "SqsMessage",
    "SqsQueue",
    "make_clients",
    "message_attributes",
]
