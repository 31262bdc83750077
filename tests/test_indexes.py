"""Index parameter validation: every mistake Milvus would accept silently fails here first."""
from __future__ import annotations

import pytest

from bench.errors import BenchError
from bench.stores.indexes import INDEX_TYPES, point_label, validate_index

LITE = "milvus_lite"


def check(index_type, build, points, store=LITE, metric="IP", top_k=10, dim=None):
    return validate_index(index_type, build, points, store=store, metric=metric, top_k=top_k, dim=dim)


def test_valid_configs_pass():
    assert check("IVF_FLAT", {"nlist": 16}, [{"nprobe": 1}, {"nprobe": 16}]).name == "IVF_FLAT"
    assert check("HNSW", {"M": 16, "efConstruction": 64}, [{"ef": 10}]).name == "HNSW"
    assert check("FLAT", {}, [{}]).name == "FLAT"


@pytest.mark.parametrize("args, message", [
    (("IVF_FLAT", {"nlist": 0}, [{}]), "nlist=0 must be a positive integer"),
    (("IVF_FLAT", {"nlist": -3}, [{}]), "nlist=-3"),
    (("IVF_FLAT", {"nlist": 1.5}, [{}]), "nlist=1.5"),
    (("IVF_FLAT", {"nlist": True}, [{}]), "nlist=True"),
    (("IVF_FLAT", {"nlist": 8}, [{"nprobe": 9}]), "nprobe=9 exceeds nlist=8"),
    (("IVF_FLAT", {"nlsit": 8}, [{}]), "unknown build parameter(s) ['nlsit']"),
    (("IVF_FLAT", {"nlist": 8}, [{"ef": 9}]), "unknown search parameter(s) ['ef']"),
    (("HNSW", {"M": 8}, [{"ef": 5}]), "ef=5 must be >= search.top_k=10"),
    (("HNSW", {}, []), "at least one point"),
    (("FLAT", {}, [{}], LITE, "HAMMING"), "search.metric='HAMMING'"),
    (("FLAT", {}, [{}], LITE, "IP", 0), "search.top_k=0"),
    (("NOPE", {}, [{}]), "unknown index type 'NOPE'"),
])
def test_bad_parameters_are_refused(args, message):
    with pytest.raises(BenchError, match=None) as err:
        check(*args)
    assert message in str(err.value)


def test_server_only_index_on_lite_names_the_store_that_has_it():
    with pytest.raises(BenchError) as err:
        check("IVF_PQ", {"nlist": 16, "m": 8, "nbits": 8}, [{"nprobe": 4}])
    assert "not supported by store milvus_lite" in str(err.value) and "milvus_server" in str(err.value)


def test_pq_m_must_divide_dim():
    with pytest.raises(BenchError, match="m=7 must divide the embedding dim 512"):
        check("IVF_PQ", {"nlist": 16, "m": 7, "nbits": 8}, [{"nprobe": 4}], store="milvus_server", dim=512)


def test_every_index_config_file_is_known(tmp_path):
    from pathlib import Path

    import yaml

    for path in (Path(__file__).parent.parent / "conf" / "index").glob("*.yaml"):
        data = yaml.safe_load(path.read_text())
        assert data["type"] == path.stem and data["type"] in INDEX_TYPES


def test_point_label():
    assert point_label({"nprobe": 8}) == "nprobe=8"
    assert point_label({"ef": 10, "x": 1}) == "ef=10,x=1"
    assert point_label({}) == "default"


# -- which stores build what: their capabilities, through the registry -----------------------------
def test_every_store_config_file_is_a_registered_kind_typed_by_its_own_schema():
    from pathlib import Path

    import yaml

    from bench.stores import registry

    files = sorted((Path(__file__).parent.parent / "conf" / "store").glob("*.yaml"))
    assert [p.stem for p in files] == sorted(registry.kinds())
    for path in files:
        data = yaml.safe_load(path.read_text())
        assert data["kind"] == path.stem and f"/store_schema/{path.stem}@_here_" in data["defaults"]


def test_capabilities_say_what_each_milvus_flavour_builds():
    from bench.stores import capabilities

    lite, server = capabilities("milvus_lite"), capabilities("milvus_server")
    assert "IVF_PQ" not in lite.index_types and {"IVF_PQ", "SCANN", "DISKANN"} <= server.index_types
    assert lite.embedded and not server.embedded
    assert lite.min_rows_to_index == 0 and server.min_rows_to_index == 1024
    assert lite.filters and server.filters


def test_an_unknown_store_kind_is_a_one_line_error():
    with pytest.raises(BenchError, match=r"unknown store.kind 'milvus': choose one of milvus_lite, milvus_server"):
        check("FLAT", {}, [{}], store="milvus")
