"""Loads the models into a Triton that restarted (compose's `model-keeper` service).

Triton runs with explicit model control: a restarted server serves nothing until told, and the services answer
from their fallbacks meanwhile. This loop watches the server and, once it has seen models served, reloads every
model that has a version (as ``ecomai run`` does after restarting its own Triton) whenever the server comes back
with none. Before models were first seen it does nothing: `prepare` trains and loads them.

    python /opt/ecomai/model_keeper.py      # settings from ECOMAI_* (ECOMAI_TRITON_HOST, ECOMAI_DATABASE_URL, ...)
"""

from __future__ import annotations

import logging
import os
import time

from services.platform import load_models
from shared.core.model_catalog import MODEL_NAMES
from shared.core.settings import Settings
from shared.inference.triton_client import TritonClient
from shared.store.engine import make_engine

log = logging.getLogger("ecomai.model_keeper")
INTERVAL_S = float(os.environ.get("ECOMAI_MODEL_KEEPER_INTERVAL_S", "3"))


def served_models(client: TritonClient) -> int | None:
    """How many models the server has READY; None when it does not answer."""
    if not client.is_ready():
        return None
    try:
        return sum(len(client.ready_versions(name)) > 0 for name in MODEL_NAMES)
    except Exception:  # noqa: BLE001 - a server going down between the two calls
        return None


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = Settings()
    if not settings.database_url:
        raise SystemExit("ECOMAI_DATABASE_URL is not set: the keeper reads the model registry from the database")
    seen_serving = False
    while True:
        client = TritonClient(settings.triton_grpc_url, max(settings.triton_timeout_s, 30))
        try:
            served = served_models(client)
            if served:
                if not seen_serving:
                    log.info("Triton at %s serves %d models; watching it", settings.triton_grpc_url, served)
                seen_serving = True
            elif served == 0 and seen_serving:
                log.info("Triton at %s came back with no model loaded; loading them", settings.triton_grpc_url)
                engine = make_engine(settings.database_url, pool_size=1, name="model_keeper")
                try:
                    load_models(settings, engine, client, skipped=MODEL_NAMES)  # what has a version
                    log.info("models loaded again")
                except Exception:  # noqa: BLE001 - retried on the next round
                    log.exception("loading the models failed; retrying")
                finally:
                    engine.dispose()
        finally:
            client.close()
        time.sleep(INTERVAL_S)


if __name__ == "__main__":
    raise SystemExit(main())
