"""publish_version on a real (embedded) Postgres: atomic folders, increasing versions, failures leave nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.core.errors import FailedPrecondition
from shared.core.settings import PROJECT_ROOT
from shared.learning.registry import latest_version, publish_version, read_meta, registry_rows, rollback


def _build_ok(folder: Path) -> dict:
    (folder / "hf").mkdir()
    (folder / "hf" / "config.json").write_text("{}")
    return {"labels": ["a", "b"], "max_length": 32}


def _publish(engine, repo, build=_build_ok, model="intent_classifier"):
    return publish_version(
        engine,
        repo,
        model,
        build,
        "sequence_classifier",
        params={"backbone": "bb", "mode": "top", "seed": 1},
        metrics={"accuracy": 0.9},
        dataset={"rows": 10},
    )


def test_versions_increase_and_folders_are_complete(data_engine, tmp_path):
    first, second = _publish(data_engine, tmp_path), _publish(data_engine, tmp_path)
    assert (first.version, second.version) == (1, 2)
    assert latest_version(tmp_path, "intent_classifier") == 2
    for v in (first, second):
        assert sorted(p.name for p in v.path.iterdir()) == ["backend_runtime.py", "hf", "meta.json", "model.py"]
    meta = read_meta(tmp_path, "intent_classifier", 2)
    assert meta["labels"] == ["a", "b"] and meta["registry_id"] == second.registry_id and meta["version"] == 2
    assert "TritonPythonModel" in (second.path / "model.py").read_text()
    rows = registry_rows(data_engine, "intent_classifier")
    assert [(r["version"], r["status"]) for r in rows] == [(2, "candidate"), (1, "candidate")]
    assert rows[0]["params"]["seed"] == 1 and rows[0]["dataset"] == {"rows": 10} and rows[0]["mode"] == "top"


def test_failed_build_leaves_no_folder_and_marks_row_failed(data_engine, tmp_path):
    def crash(folder: Path) -> dict:
        (folder / "hf").mkdir()
        (folder / "hf" / "half-written.bin").write_bytes(b"x" * 100)
        raise RuntimeError("disk full")

    _publish(data_engine, tmp_path)
    with pytest.raises(RuntimeError, match="disk full"):
        _publish(data_engine, tmp_path, crash)
    with pytest.raises(FailedPrecondition, match="no hf/"):
        _publish(data_engine, tmp_path, lambda folder: {})
    assert sorted(p.name for p in (tmp_path / "intent_classifier").iterdir()) == ["1", "config.pbtxt"]  # no .tmp-*
    assert latest_version(tmp_path, "intent_classifier") == 1
    statuses = [(r["version"], r["status"]) for r in registry_rows(data_engine, "intent_classifier")]
    assert statuses == [(3, "failed"), (2, "failed"), (1, "candidate")]
    # a failed number is never reused: the next good version is 4
    assert _publish(data_engine, tmp_path).version == 4


def test_a_new_repository_gets_the_committed_config_and_a_tuned_one_is_kept(data_engine, tmp_path):
    committed = (PROJECT_ROOT / "triton_models" / "intent_classifier" / "config.pbtxt").read_text()
    _publish(data_engine, tmp_path / "new")  # a repository folder that does not exist yet
    assert (tmp_path / "new" / "intent_classifier" / "config.pbtxt").read_text() == committed
    tuned = tmp_path / "tuned" / "intent_classifier" / "config.pbtxt"
    tuned.parent.mkdir(parents=True)
    tuned.write_text(committed.replace("KIND_CPU", "KIND_GPU"))
    _publish(data_engine, tmp_path / "tuned")
    assert tuned.read_text() == committed.replace("KIND_CPU", "KIND_GPU") != committed


def test_version_numbers_respect_folders_the_registry_does_not_know(data_engine, tmp_path):
    (tmp_path / "ctr_model" / "7").mkdir(parents=True)
    (tmp_path / "ctr_model" / ".retired-9").mkdir()
    assert _publish(data_engine, tmp_path, model="ctr_model").version == 10


def test_rollback_without_server_sets_newest_aside(data_engine, tmp_path):
    for _ in range(2):
        _publish(data_engine, tmp_path)
    assert rollback(data_engine, tmp_path, None, "intent_classifier") == 1
    assert latest_version(tmp_path, "intent_classifier") == 1
    assert (tmp_path / "intent_classifier" / ".retired-2" / "meta.json").is_file()
    rows = {r["version"]: r["status"] for r in registry_rows(data_engine, "intent_classifier")}
    assert rows == {2: "retired", 1: "candidate"}
    with pytest.raises(FailedPrecondition, match="nothing to roll back"):
        rollback(data_engine, tmp_path, None, "intent_classifier")
    assert _publish(data_engine, tmp_path).version == 3
    assert json.loads((tmp_path / "intent_classifier" / "3" / "meta.json").read_text())["version"] == 3
