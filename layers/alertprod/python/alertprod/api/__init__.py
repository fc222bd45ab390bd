"""The filter management API: tokens, the Lambda authorizer, routes over the service store.

- :mod:`~alertprod.api.tokens`      operator-issued bearer tokens, stored hashed
- :mod:`~alertprod.api.authorizer`  the HTTP API Lambda authorizer (payload 2.0, simple responses)
- :mod:`~alertprod.api.routes`      the routes (Powertools ``APIGatewayHttpResolver``)
- :mod:`~alertprod.api.handler`     :class:`ApiHandler`, the API function's entry point
- :mod:`~alertprod.api.models`      request bodies (pydantic)

See docs/distribution.md.
"""

from alertprod.api.authorizer import authorize
from alertprod.api.handler import ApiHandler
from alertprod.api.routes import ApiContext, build_api
from alertprod.api.tokens import IssuedToken, authenticate, hash_token, issue_token, revoke_token

__all__ = ["ApiContext", "ApiHandler", "IssuedToken", "authenticate", "authorize", "build_api",
           "hash_token", "issue_token", "revoke_token"]
