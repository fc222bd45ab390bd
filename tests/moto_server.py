"""moto's server on a free loopback port, with the environment boto3 needs to reach it.

For integration tests that build their own resources (not the template's): the embedded stack
(``alertprod.local.stack.EmbeddedStack``) does the same for the whole template.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from moto.server import ThreadedMotoServer

__all__ = ["moto_environment"]


@contextmanager
def moto_environment(*, restore: Iterable[str] = ()) -> Iterator[str]:
    """Start moto's server, point ``AWS_*`` at it, yield its URL; restore the environment after.

    ``restore`` names more variables the caller will set and wants restored too.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    url = f"http://127.0.0.1:{port}"
    env = {"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}
    saved = {k: os.environ.get(k) for k in [*env, *restore]}
    os.environ.update(env)
    try:
        yield url
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
