"""Per-user alert filters: a small SQL-like language over alert fields, compiled to numpy.

The language is the contract of interfaces.md §4 (docs/filters.md): one boolean expression over
scalar fields of the alert packet, with SQL's three-valued logic. This package parses it, checks
it against the alert schema, and compiles it to whole-array numpy operations over a batch of
alerts, so that thousands of filters run over a visit's alerts in seconds on one core.

- :func:`parse_filter` — text to :class:`FilterAst` (syntax only);
- :func:`compile_filter` — text to :class:`CompiledFilter` (``.evaluate(batch)``,
  ``.explain(record)``, ``.normalized``, ``.version_hash``, ``.fields``, ``.cost``);
- :class:`AlertBatch` — alerts as columns with null masks (``AlertBatch.from_records``);
- :class:`Watchlist`, :class:`Watchmap` — named sky lists and regions (extensions);
- :func:`filter_fields` — the fields a filter may name, from the alert schema.

Every refusal is an :class:`alertprod.errors.FilterError` with ``.position`` (0-based) and
``.token``. Nothing a user writes is executed as code.
"""

from alertprod.errors import FilterError
from alertprod.filtering._parser import MAX_CHARS, MAX_NESTING, parse_filter
from alertprod.filtering._types import FUNCTIONS
from alertprod.filtering.batch import AlertBatch, Column
from alertprod.filtering.compiler import ENGINE_VERSION, MAX_COST, CompiledFilter, compile_filter
from alertprod.filtering.explain import ExplainNode, ExplainTrace
from alertprod.filtering.fields import FieldInfo, filter_fields
from alertprod.filtering.syntax import FilterAst
from alertprod.filtering.watch import MAX_WATCHLIST_ENTRIES, Watchlist, Watchmap

__all__ = [
    "parse_filter",
    "compile_filter",
    "CompiledFilter",
    "FilterAst",
    "FilterError",
    "AlertBatch",
    "Column",
    "ExplainTrace",
    "ExplainNode",
    "Watchlist",
    "Watchmap",
    "FieldInfo",
    "filter_fields",
    "FUNCTIONS",
    "ENGINE_VERSION",
    "MAX_CHARS",
    "MAX_NESTING",
    "MAX_COST",
    "MAX_WATCHLIST_ENTRIES",
]
