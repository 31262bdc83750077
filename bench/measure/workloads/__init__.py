"""Workloads beyond the plain sweep (``workload=`` in conf/workload/): filtered and streaming search, and
the query path served under load (serve/). Each is a :class:`bench.measure.workloads.base.Workload`,
registered by name in :mod:`bench.measure.workloads.registry`.

The ideas follow VectorDBBench 1.0 (zilliztech/VectorDBBench): its label-filter cases (one label
value per target share of the corpus, ground truth computed within that share) and its read-write
cases (a fixed insert rate while searching, results per stage of the insert). What differs here:
labels are the images' own COCO categories, so selectivity comes from the data, not from a
synthetic label column; and every phase is bounded in wall time.
"""
