"""S3 adapter of :class:`~alertprod.aws.blobs.BlobStore`: one bucket, an injected boto3 client."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from alertprod.aws.blobs import _check_data, check_key, check_range
from alertprod.errors import ConflictError, NotFoundError, StorageError

__all__ = ["S3BlobStore"]

_MISSING_CODES = {"NoSuchKey", "404", "NotFound"}


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3BlobStore:
    """Objects of one S3 bucket.

    Parameters
    ----------
    client : botocore.client.S3
        An S3 client (``boto3.client("s3")``); it finds the endpoint itself.
    bucket : str
        Bucket name.

    Notes
    -----
    :meth:`put_if_absent` is an S3 conditional write (``IfNoneMatch="*"``), atomic on AWS and
    on the embedded stack (moto implements the precondition).
    """

    def __init__(self, client: Any, bucket: str) -> None:
        if not bucket or not isinstance(bucket, str):
            raise StorageError(f"bucket must be a non-empty string, got {bucket!r}")
        self.client = client
        self.bucket = bucket

    def __repr__(self) -> str:
        return f"S3BlobStore(bucket={self.bucket!r})"

    def get(self, key: str) -> bytes:
        """The object's bytes.

        Raises
        ------
        NotFoundError
            When no object exists at ``key``.
        StorageError
            On any other S3 failure.
        """
        check_key(key)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
            return response["Body"].read()
        except ClientError as exc:
            if _code(exc) in _MISSING_CODES:
                raise NotFoundError(f"no object {self.uri(key)}") from exc
            raise StorageError(f"cannot read {self.uri(key)}: {exc}") from exc
        except BotoCoreError as exc:  # no answer: endpoint unreachable, timeout, broken stream
            raise StorageError(f"cannot read {self.uri(key)}: {exc}") from exc

    def size(self, key: str) -> int:
        """The object's length in bytes (one HEAD request).

        Raises
        ------
        NotFoundError
            When no object exists at ``key``.
        """
        head = self.head(key)
        if head is None:
            raise NotFoundError(f"no object {self.uri(key)}")
        return int(head["size"])

    def get_range(self, key: str, start: int, stop: int) -> bytes:
        """Bytes ``[start, stop)`` of the object: one GET with ``Range: bytes=start-(stop-1)``.

        Cut at the object's end as a slice is (S3 answers a range past the end with 416,
        returned here as ``b""``); an empty range costs one HEAD, to tell a missing object.

        Raises
        ------
        NotFoundError
            When no object exists at ``key``.
        StorageError
            On a bad range or any other S3 failure.
        """
        check_key(key)
        start, stop = check_range(start, stop)
        if start == stop:
            self.size(key)
            return b""
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key,
                                              Range=f"bytes={start}-{stop - 1}")
            return response["Body"].read()
        except ClientError as exc:
            code = _code(exc)
            if code in _MISSING_CODES:
                raise NotFoundError(f"no object {self.uri(key)}") from exc
            if code in ("InvalidRange", "416"):
                return b""
            raise StorageError(f"cannot read {self.uri(key)} bytes {start}-{stop}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"cannot read {self.uri(key)} bytes {start}-{stop}: {exc}") from exc

    def put(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        """Write (or overwrite) an object, with an optional content type and user metadata."""
        check_key(key)
        extra: dict[str, Any] = {}
        if content_type:
            extra["ContentType"] = content_type
        if metadata:
            extra["Metadata"] = {str(k): str(v) for k, v in metadata.items()}
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=_check_data(data), **extra)
        except ClientError as exc:
            raise StorageError(f"cannot write {self.uri(key)}: {exc}") from exc

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Write only when the key is free; ``True`` when this call created the object.

        Raises
        ------
        ConflictError
            When S3 reports a concurrent conditional write in progress (HTTP 409); retry.
        """
        check_key(key)
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=key, Body=_check_data(data), IfNoneMatch="*"
            )
        except ClientError as exc:
            code = _code(exc)
            if code in ("PreconditionFailed", "412"):
                return False
            if code in ("ConditionalRequestConflict", "409"):
                raise ConflictError(f"concurrent write of {self.uri(key)}; retry") from exc
            raise StorageError(f"cannot write {self.uri(key)}: {exc}") from exc
        return True

    def exists(self, key: str) -> bool:
        """Whether an object exists at ``key``."""
        return self.head(key) is not None

    def head(self, key: str) -> dict[str, Any] | None:
        """Size (bytes), last_modified (aware datetime), metadata, content_type; ``None`` if missing."""
        check_key(key)
        try:
            r = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in _MISSING_CODES:
                return None
            raise StorageError(f"cannot read {self.uri(key)}: {exc}") from exc
        return {
            "size": int(r["ContentLength"]),
            "last_modified": r["LastModified"],
            "metadata": dict(r.get("Metadata", {})),
            "content_type": r.get("ContentType"),
        }

    def list(self, prefix: str = "", *, page_size: int = 1000) -> Iterator[str]:
        """Keys under ``prefix`` in lexicographic order, paging through ListObjectsV2
        (``page_size`` keys per request, at most S3's 1000)."""
        paginator = self.client.get_paginator("list_objects_v2")
        config = {"PageSize": int(page_size)}
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, PaginationConfig=config):
                for item in page.get("Contents", []):
                    yield item["Key"]
        except ClientError as exc:
            raise StorageError(f"cannot list {self.uri(prefix)}: {exc}") from exc

    def delete(self, key: str) -> None:
        """Delete an object (no error when it is already gone)."""
        check_key(key)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            raise StorageError(f"cannot delete {self.uri(key)}: {exc}") from exc

    def uri(self, key: str) -> str:
        """``s3://bucket/key``."""
        return f"s3://{self.bucket}/{key}"
