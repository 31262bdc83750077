"""What every results.json model shares: lenient sections that keep fields they do not declare.

A section declares the fields that something reads (the report, the gate, the summary) with their types,
so a renamed or mistyped field is a validation error when the run writes it, not an empty column later.
Fields nobody reads yet (a timing detail, a converter's versions) pass through unchecked and are kept:
results.json records more than the readers use. The top level is strict instead (:mod:`bench.schema.run`):
a section nobody declared is an error, so a workload that adds one declares it first.
"""
from __future__ import annotations

import re
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

# ``<figure>_ci<NN>``: a figure's interval at the run's ``stats.confidence`` (recall_at_k_ci95 at 0.95).
INTERVAL_KEY = re.compile(r"^(?P<name>.+)_ci(?P<level>\d+)$")

Interval = Optional[tuple[float, float]]


class Section(BaseModel):
    """A results.json object: declared fields typed, undeclared ones kept as they are."""

    model_config = ConfigDict(extra="allow")

    @model_validator(mode="after")
    def _intervals_are_pairs(self) -> "Section":
        for key, value in (self.model_extra or {}).items():
            if INTERVAL_KEY.match(key) and value is not None and not _is_pair(value, missing_ok=True):
                raise ValueError(f"{key} must be a [low, high] pair (an end may be null: not measured) or null, "
                                 f"not {value!r}")
        return self

    def extra(self, key: str, default: Any = None) -> Any:
        """An undeclared field as written (a reader that needs one regularly should declare it instead)."""
        return (self.model_extra or {}).get(key, default)

    def interval(self, name: str) -> Interval:
        """The interval written beside figure ``name`` (``<name>_ci95``, or at another confidence), if both its
        ends were measured."""
        for key, value in {**self.__dict__, **(self.model_extra or {})}.items():
            match = INTERVAL_KEY.match(key)
            if match and match["name"] == name and value is not None and _is_pair(value):
                return float(value[0]), float(value[1])
        return None


def _is_pair(value: Any, missing_ok: bool = False) -> bool:
    return (isinstance(value, (list, tuple)) and len(value) == 2
            and all((isinstance(v, (int, float)) and not isinstance(v, bool)) or (missing_ok and v is None)
                    for v in value))


def describe_errors(err: ValidationError, limit: int = 3) -> str:
    """A validation error on one line: ``points.0.batch_qps: Input should be a valid number (got 'fast')``."""
    parts = [f"{'.'.join(map(str, e['loc'])) or '(top level)'}: {e['msg']} (got {e['input']!r:.60})"
             for e in err.errors()[:limit]]
    more = err.error_count() - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
