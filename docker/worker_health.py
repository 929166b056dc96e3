"""Container health check of the Celery worker (compose's `worker` service), run inside the app image:

    python /opt/ecomai/worker_health.py

Exit 0 when this container's worker answers a ping through the broker, 1 otherwise (the reason on stderr)."""

from __future__ import annotations

import socket
import sys

from services.worker.celery_app import make_celery
from shared.core.settings import Settings


def main() -> int:
    settings = Settings()
    node = f"celery@{socket.gethostname()}"  # the worker's default node name in this container
    if make_celery(settings).control.ping(destination=[node], timeout=3):
        return 0
    print(f"no answer from {node} through {settings.broker_url}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
