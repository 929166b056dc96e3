"""`ecomai bench soak` end to end, short: 15 s of open-loop traffic over every service with one Triton kill, run as
the command runs (its own Triton and service processes) over the session platform's database and models. Only the
two tabular models are served to keep it cheap: search and chat answer from their fallbacks throughout."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from shared.core.settings import PROJECT_ROOT

BAD_CODES = {"UNKNOWN", "INTERNAL"}


def test_soak_keeps_answering_through_a_triton_kill_and_loses_no_event(platform, tmp_path):
    out = tmp_path / "soak.json"
    s = platform.settings
    env = dict(os.environ)
    env |= {
        "ECOMAI_DATABASE_URL": platform.url,
        "ECOMAI_HOME": str(s.home.resolve()),
        "ECOMAI_MODEL_REPOSITORY": str(s.model_repository),
    }
    command = [sys.executable, "-m", "bench.soak", "--duration", "15", "--rate", "6", "--warmup", "2"]
    command += ["--first-fault", "3", "--triton-down", "2", "--recover", "8", "--deadline", "3"]
    command += ["--models", "ctr_model", "recs_ranker", "--out", str(out)]
    done = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=240)
    report = json.loads(out.read_text())["results"]
    events = report["events"]
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    assert report["requests"] >= 15 * 6 * 0.9 and not report["services_exited"]
    assert not BAD_CODES & set(report["errors_by_code"]), report["errors_by_code"]
    assert "no_fault" not in report["errors_by_window"], report["errors_by_window"]
    # every event the services accepted is stored exactly once
    assert events["sent"] > 0 and events["accepted"] == events["stored_of_accepted"], events
    assert events["stored_twice"] == 0, events
    (kill,) = [f for f in report["faults"] if f["fault"] == "kill_triton"]
    ads = report["methods"]["RankAds"]
    assert ads["degraded"] > 0 and ads["codes"] == {"OK": ads["calls"]}, ads  # degraded, not failed, while down
    recovered = kill["degraded_until_s_after_models_back"]
    assert {"RankAds", "Recommend"} <= set(recovered) and max(recovered.values()) < 8, kill
    assert all(r["before_mb"] and r["after_mb"] for r in report["rss"].values()), report["rss"]
