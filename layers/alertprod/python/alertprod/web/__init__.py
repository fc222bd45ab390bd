"""The precovery service's web page: static files (HTML, CSS, ES modules) served by the API.

Package data, so that it ships in the Lambda layer; served by :mod:`alertprod.api.pages`.
See docs/precovery-service.md (the web page).
"""
