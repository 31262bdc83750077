"""A password typed into store.uri or metadata.url is refused before Hydra writes any file."""
from __future__ import annotations

import pytest
from conftest import REPO, run_cli
from hydra import compose, initialize_config_dir

from bench.callbacks import _refuse_passwords
from bench.config import register_configs
from bench.stores.urls import has_password, url_password_problem

PASSWORD = "pw-Zq81x"


def assert_refused(proc, variable: str, *folders) -> str:
    line = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert line.startswith("error: ") and variable in line
    assert PASSWORD not in proc.stdout + proc.stderr
    for folder in folders:  # nothing was written: no .hydra/config.yaml, overrides.yaml, hydra.yaml, log
        assert not folder.exists()
    return line


def test_password_in_store_uri_is_refused_before_the_run_folder_exists(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cli(["experiment=smoke", "store=milvus_server", f"store.uri=http://root:{PASSWORD}@127.0.0.1:19530",
                    f"hydra.run.dir={run_dir}"])
    line = assert_refused(proc, "MILVUS_TOKEN", run_dir)
    assert "store.uri holds a password" in line and "store.token_env" in line


def test_password_in_metadata_url_names_the_configured_variable(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cli(["experiment=smoke", "metadata=redis", f"metadata.url=redis://:{PASSWORD}@127.0.0.1:6379/0",
                    "metadata.password_env=MY_REDIS_PW", f"hydra.run.dir={run_dir}"])
    assert "export MY_REDIS_PW=" in assert_refused(proc, "MY_REDIS_PW", run_dir)


def test_password_in_one_value_of_a_sweep_is_refused_before_the_sweep_folder(tmp_path):
    sweep_dir = tmp_path / "sweep"
    proc = run_cli(["-m", "experiment=smoke", "metadata=redis",
                    f"metadata.url=redis://127.0.0.1:6379/0,redis://:{PASSWORD}@127.0.0.1:6379/0",
                    f"hydra.sweep.dir={sweep_dir}"])
    assert_refused(proc, "REDIS_PASSWORD", sweep_dir)


def test_password_in_a_config_file_is_refused_too(tmp_path):
    conf = tmp_path / "conf"
    (conf / "store").mkdir(parents=True)
    (conf / "store" / "mine.yaml").write_text(f"kind: milvus_server\nuri: http://bench:{PASSWORD}@127.0.0.1:19530\n")
    run_dir = tmp_path / "run"
    proc = run_cli(["--config-dir", str(conf), "experiment=smoke", "store=mine", f"hydra.run.dir={run_dir}"])
    assert_refused(proc, "MILVUS_TOKEN", run_dir)


@pytest.mark.parametrize("text, found", [
    ("redis://:pw@host:6379/0", True), ("http://user:pw@host:19530", True), ("rediss://u:@h", True),
    ("redis://host:6379/0,redis://:pw@other:6379", True),
    ("http://user@host:19530", False), ("http://host:19530", False), ("/data/milvus_lite.db", False),
    ("${hydra:runtime.cwd}/reports/milvus_lite.db", False), ("", False),
])
def test_has_password(text, found):
    assert has_password(text) is found


def test_problem_names_the_default_variable_when_none_is_configured():
    problem = url_password_problem({"store.uri": "http://u:p@h:19530"}, {"store.token_env": None})
    assert problem and "set store.token_env=MILVUS_TOKEN and export MILVUS_TOKEN=user:password" in problem
    assert url_password_problem({"store.uri": "http://h:19530", "metadata.url": None}, {}) is None
    assert url_password_problem({}, {}, ["+metadata.url=redis://:p@h"]) is not None
    assert url_password_problem({}, {}, ["dataset.root=http://u:p@h"]) is None  # only the two URL keys


def _composed(overrides: list[str]):
    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        return compose("config", overrides=overrides, return_hydra_config=True)


def test_an_override_that_interpolates_hydras_runtime_is_read_unresolved(capsys):
    # The callback runs before Hydra sets its runtime config: resolving ${hydra:runtime.cwd} there raised,
    # and Hydra turned that into a UserWarning on every run whose dataset.root was written this way.
    _refuse_passwords(_composed(["experiment=smoke", "dataset.root=${hydra:runtime.cwd}/data/mine"]))
    assert capsys.readouterr().err == ""
    with pytest.raises(SystemExit) as stopped:
        _refuse_passwords(_composed(["experiment=smoke", "store=milvus_server",
                                     f"store.uri=http://root:{PASSWORD}@${{oc.env:HOST,127.0.0.1}}:19530"]))
    assert stopped.value.code == 2 and "store.uri holds a password" in capsys.readouterr().err
