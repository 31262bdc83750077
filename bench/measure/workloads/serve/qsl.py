"""LoadGen's query sample library: which image files the samples are.

The samples are the held-out query images; when ``serve.samples`` asks for more than there are, corpus
images follow (in id order), and the section says how many. Loading does nothing: the system under
test reads each sample's file itself, as a service reads the image a user uploads.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Samples:
    paths: list[str]
    image_ids: list[int]
    from_queries: int
    from_corpus: int

    def describe(self) -> dict[str, Any]:
        note = (f"{self.from_queries} held-out queries and {self.from_corpus} corpus images (more samples were asked "
                "for than there are queries)" if self.from_corpus else f"the {self.from_queries} held-out queries")
        return {"total": len(self.paths), "from_queries": self.from_queries, "from_corpus": self.from_corpus,
                "note": note}


def choose_samples(query_ids: Sequence[int], corpus_ids: Sequence[int], paths: dict[int, str],
                   wanted: Optional[int]) -> Samples:
    ids = [int(i) for i in query_ids]
    extra = max(0, (wanted or len(ids)) - len(ids))
    if extra:
        extra = min(extra, len(corpus_ids))
        ids += sorted(int(i) for i in corpus_ids)[:extra]
        log.info("serve: %d samples asked, %d held-out queries: adding %d corpus images", wanted, len(query_ids), extra)
    elif wanted is not None and wanted < len(ids):
        ids = ids[:wanted]
    return Samples(paths=[str(paths[i]) for i in ids], image_ids=ids, from_queries=min(len(query_ids), len(ids)),
                   from_corpus=extra)


class LoadgenQSL:
    """``with LoadgenQSL(samples) as qsl:`` a LoadGen QSL handle over every sample, destroyed afterwards."""

    def __init__(self, samples: Samples):
        self.samples = samples
        self.handle: Any = None

    def __enter__(self) -> Any:
        import mlperf_loadgen as lg

        n = len(self.samples.paths)
        self.handle = lg.ConstructQSL(n, n, self._load, self._unload)
        return self.handle

    def __exit__(self, kind, err, tb) -> None:
        import mlperf_loadgen as lg

        if not getattr(err, "loadgen_running", False):  # a test still running uses it (see harness.run_test)
            lg.DestroyQSL(self.handle)

    def _load(self, indices: list[int]) -> None:
        missing = [self.samples.paths[i] for i in indices if not Path(self.samples.paths[i]).is_file()]
        if missing:  # counted as undecodable per query; said once here
            log.warning("serve: %d sample file(s) are missing, e.g. %s", len(missing), missing[0])

    def _unload(self, indices: list[int]) -> None:
        pass
