"""Object storage behind one small interface, and an in-memory implementation of it.

Library code that reads or writes objects (uploads, cached images, alert packets, quarantine
records) takes a :class:`BlobStore`. :class:`~alertprod.aws.s3.S3BlobStore` is the AWS adapter;
:class:`MemoryBlobStore` is a real implementation held in a dict, for unit tests of library code
that should not need the embedded stack.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

import numpy as np

from alertprod.errors import NotFoundError, StorageError

__all__ = ["BlobStore", "MemoryBlobStore", "check_key", "check_range"]


def check_key(key: str, *, name: str = "key") -> str:
    """Check an object key on entry: a non-empty ``str`` of at most 1024 UTF-8 bytes.

    Raises
    ------
    StorageError
        Naming the argument when the key is unusable.
    """
    if not isinstance(key, str) or not key:
        raise StorageError(f"{name} must be a non-empty string, got {key!r}")
    if len(key.encode("utf-8")) > 1024:
        raise StorageError(f"{name} is longer than S3's 1024-byte limit: {key[:60]!r}...")
    return key


def check_range(start: int, stop: int) -> tuple[int, int]:
    """Check a byte range ``[start, stop)`` on entry: integers with ``0 <= start <= stop``.

    Raises
    ------
    StorageError
        Naming the argument when the range is unusable.
    """
    for name, v in (("start", start), ("stop", stop)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer):
            raise StorageError(f"{name} must be an integer byte offset, got {v!r}")
    if not 0 <= start <= stop:
        raise StorageError(f"byte range needs 0 <= start <= stop, got start={start}, stop={stop}")
    return int(start), int(stop)


def _check_data(data: bytes) -> bytes:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise StorageError(f"data must be bytes, got {type(data).__name__}")
    return bytes(data)


@runtime_checkable
class BlobStore(Protocol):
    """A flat namespace of byte objects under string keys (one S3 bucket).

    Notes
    -----
    ``put_if_absent`` is atomic: of concurrent writers of the same key exactly one gets
    ``True``. ``list`` yields keys in lexicographic (UTF-8 byte) order, as S3 does.
    ``get_range`` is one request for one byte range (S3 serves one range per GET); reading
    parts of large objects is planned by :mod:`alertprod.formats.exposure_file`.
    """

    def get(self, key: str) -> bytes:
        """The object's bytes; raises :class:`~alertprod.errors.NotFoundError` when missing."""
        ...

    def put(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        """Write (or overwrite) an object."""
        ...

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Write only when no object exists at ``key``; ``True`` when this call wrote it."""
        ...

    def exists(self, key: str) -> bool:
        """Whether an object exists at ``key``."""
        ...

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys starting with ``prefix``, in lexicographic order."""
        ...

    def delete(self, key: str) -> None:
        """Delete an object; deleting a missing key is not an error (as in S3)."""
        ...

    def head(self, key: str) -> dict[str, Any] | None:
        """``{"size", "last_modified", "metadata", "content_type"}`` or ``None`` when missing."""
        ...

    def size(self, key: str) -> int:
        """The object's length in bytes; raises :class:`~alertprod.errors.NotFoundError` when missing."""
        ...

    def get_range(self, key: str, start: int, stop: int) -> bytes:
        """Bytes ``[start, stop)`` of the object (one request), cut at its end as a slice is.

        Raises :class:`~alertprod.errors.NotFoundError` when the object is missing and
        :class:`~alertprod.errors.StorageError` when ``0 <= start <= stop`` does not hold.
        """
        ...

    def uri(self, key: str) -> str:
        """A URI naming the object (``s3://bucket/key``, ``memory://name/key``)."""
        ...


class MemoryBlobStore:
    """A :class:`BlobStore` held in memory; thread-safe.

    Parameters
    ----------
    name : str
        Name used in :meth:`uri` (plays the bucket's role).
    """

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self._objects: dict[str, tuple[bytes, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes:
        check_key(key)
        with self._lock:
            try:
                return self._objects[key][0]
            except KeyError as exc:
                raise NotFoundError(f"no object {self.uri(key)}") from exc

    def put(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        check_key(key)
        data = _check_data(data)
        with self._lock:
            self._objects[key] = (data, self._head(data, content_type, metadata))

    def put_if_absent(self, key: str, data: bytes) -> bool:
        check_key(key)
        data = _check_data(data)
        with self._lock:
            if key in self._objects:
                return False
            self._objects[key] = (data, self._head(data, None, None))
            return True

    def exists(self, key: str) -> bool:
        check_key(key)
        with self._lock:
            return key in self._objects

    def list(self, prefix: str = "") -> Iterator[str]:
        with self._lock:
            keys = sorted((k for k in self._objects if k.startswith(prefix)), key=str.encode)
        yield from keys

    def delete(self, key: str) -> None:
        check_key(key)
        with self._lock:
            self._objects.pop(key, None)

    def head(self, key: str) -> dict[str, Any] | None:
        check_key(key)
        with self._lock:
            item = self._objects.get(key)
            return None if item is None else dict(item[1])

    def size(self, key: str) -> int:
        return len(self.get(key))

    def get_range(self, key: str, start: int, stop: int) -> bytes:
        start, stop = check_range(start, stop)
        return self.get(key)[start:stop]

    def uri(self, key: str) -> str:
        return f"memory://{self.name}/{key}"

    @staticmethod
    def _head(
        data: bytes, content_type: str | None, metadata: Mapping[str, str] | None
    ) -> dict[str, Any]:
        return {
            "size": len(data),
            "last_modified": datetime.now(UTC),
            "metadata": dict(metadata or {}),
            "content_type": content_type or "binary/octet-stream",
        }
