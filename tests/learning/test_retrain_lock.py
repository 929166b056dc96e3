"""The per-model retrain lock on a real (embedded) Postgres: one retrain of a model at a time. A second retrain of
the same model while the first runs is refused ("skipped") without training or publishing anything; other models
are not blocked; the lock is free again once the first retrain ends."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from shared.core.settings import Settings
from shared.learning.registry import latest_version, registry_rows
from shared.learning.retrain import retrain_and_deploy, retrain_lock

# the text encoder's "training" is an export of the pretrained backbone: a real retrain that takes seconds
MODEL = "text_encoder"


def test_the_lock_is_exclusive_per_model_and_freed_on_exit(data_engine):
    with retrain_lock(data_engine, "ctr_model") as first:
        with retrain_lock(data_engine, "ctr_model") as second, retrain_lock(data_engine, "recs_ranker") as other:
            assert (first, second, other) == (True, False, True)
        with retrain_lock(data_engine, "ctr_model") as third:  # the refused one did not release the holder's lock
            assert not third
    with retrain_lock(data_engine, "ctr_model") as after:
        assert after


def test_a_second_retrain_of_the_same_model_is_skipped_while_the_first_runs(data_engine, tmp_path):
    settings = Settings(home=tmp_path / "home", model_repository=tmp_path / "models")
    training, may_finish = threading.Event(), threading.Event()

    def hold_inside_training(message: str) -> None:  # the first progress message comes from inside train_one
        if not training.is_set():
            training.set()
            assert may_finish.wait(60)

    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(
            retrain_and_deploy, data_engine, settings, MODEL, None, "request-1", None, hold_inside_training
        )
        assert training.wait(60), "the first retrain never reached training"
        try:
            second = retrain_and_deploy(data_engine, settings, MODEL, request_id="request-2")
            assert latest_version(settings.model_repository, MODEL) is None  # the first has not published yet
        finally:
            may_finish.set()
        first_result = first.result(120)

    assert (second["status"], second["version"]) == ("skipped", None)
    assert (first_result["status"], first_result["version"]) == ("published", 1)  # no Triton client: published
    rows = registry_rows(data_engine, MODEL)
    assert [(r["version"], r["params"]["request_id"]) for r in rows] == [(1, "request-1")]
    assert latest_version(settings.model_repository, MODEL) == 1

    # the lock was what refused it: once the first retrain is done, the lock is free again (a second version of
    # the text encoder would fine-tune, which this shop has too little behaviour for)
    with retrain_lock(data_engine, MODEL) as free:
        assert free
