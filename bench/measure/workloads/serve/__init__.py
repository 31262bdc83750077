"""workload=serve: the query path as one service under MLPerf LoadGen (mlcommons-loadgen).

LoadGen issues query samples in its scenarios (SingleStream, Server with Poisson arrivals at a target
QPS and a latency bound, Offline) and judges each test VALID or not; the system under test reads the
sample's image file, decodes and preprocesses it, runs the run's ONNX model, searches the store at
``serve.search``, resolves the ids to paths through the metadata backend and completes the sample.

- settings.py: serve.* checks and LoadGen's TestSettings;   harness.py: one LoadGen test, its logs, Ctrl-C
- qsl.py: the samples (query images);   sut.py: the SUT with worker threads;   batcher.py: dynamic batching
- pipeline.py: the timed query path;   stages.py: per-query stage times;   peak.py: the peak Server QPS
- accuracy.py: served top-K vs offline search;   workload.py: the order of the tests, the section
"""
from bench.measure.workloads.serve.workload import ServeWorkload

__all__ = ["ServeWorkload"]
