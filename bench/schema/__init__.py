"""The schema of results.json: pydantic models that the run writes through and the report and gate read.

:class:`Results` is the whole file; :data:`SECTIONS` maps each top-level section to its model;
:func:`upgrade` reads files of older versions; ``python -m bench.schema`` writes docs/results-format.md.
"""
from bench.schema.base import Section, describe_errors
from bench.schema.run import SCHEMA_VERSION, SECTIONS, STATUSES, Results, upgrade

__all__ = ["SCHEMA_VERSION", "SECTIONS", "STATUSES", "Results", "Section", "describe_errors", "upgrade"]
