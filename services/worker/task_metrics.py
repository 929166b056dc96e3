"""Prometheus metrics of the Celery worker: tasks finished by name and state, their run time, and how many run now
(``shared.core.observability`` TASK_*), from Celery's task signals.

The metrics are served by the process that runs the tasks (a prefork child, or the worker itself with the solo or
threads pool) at ``settings.worker_metrics_port``, started with its first task or when a prefork child starts;
0 turns it off. ``connect(settings)`` is called once by ``make_celery``."""

from __future__ import annotations

import os
import time
from typing import Any

from celery import signals

from shared.core.observability import TASK_LATENCY, TASK_TOTAL, TASKS_RUNNING, serve_metrics
from shared.core.settings import Settings

_started: dict[str, float] = {}  # task id -> perf_counter at prerun
_serving_pid = 0
_settings: Settings | None = None


def _serve_here() -> None:
    """Starts this process's /metrics once (the tasks' counters live in the process that runs them)."""
    global _serving_pid
    if _settings is None or not _settings.worker_metrics_port or _serving_pid == os.getpid():
        return
    _serving_pid = os.getpid()
    serve_metrics(_settings.worker_metrics_port, _settings.host)


def _name(task: Any, sender: Any = None) -> str:
    return str(getattr(task, "name", None) or getattr(sender, "name", None) or "unknown")


def _prerun(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    _serve_here()
    if task_id:
        _started[task_id] = time.perf_counter()
    TASKS_RUNNING.labels(_name(task)).inc()


def _postrun(task_id: str | None = None, task: Any = None, state: str | None = None, **_: Any) -> None:
    name = _name(task)
    TASKS_RUNNING.labels(name).dec()
    started = _started.pop(task_id or "", None)
    if started is not None:
        TASK_LATENCY.labels(name).observe(time.perf_counter() - started)
    TASK_TOTAL.labels(name, (state or "unknown").lower()).inc()


def _process_init(**_: Any) -> None:
    _serve_here()


def connect(settings: Settings) -> None:
    """Connects the signal handlers (weak=False: they are module functions, kept anyway) for ``settings``."""
    global _settings
    _settings = settings
    signals.task_prerun.connect(_prerun, weak=False, dispatch_uid="ecomai.task_metrics.prerun")
    signals.task_postrun.connect(_postrun, weak=False, dispatch_uid="ecomai.task_metrics.postrun")
    signals.worker_process_init.connect(_process_init, weak=False, dispatch_uid="ecomai.task_metrics.process_init")
