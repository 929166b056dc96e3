"""Start-up shared by the Triton python-backend models (backend_model.py, tabular_backend.py): the version folder,
its meta.json, the model config, torch's thread count and the device of the instance Triton is initialising.

Copied beside ``model.py`` into each version folder by shared/learning/registry.py (Triton puts the version folder
on ``sys.path``, so ``model.py`` imports it as ``backend_runtime``). Like the backends it runs in Triton's own
Python process and imports nothing of the platform."""

import json
import os
from typing import Any, NamedTuple


class InstanceStart(NamedTuple):
    version_dir: str
    meta: dict[str, Any]  # the version's meta.json
    config: dict[str, Any]  # the model config Triton loaded (config.pbtxt or a load-time override), as JSON
    device: str  # "cpu" or "cuda:<id>"


def start_instance(args: dict[str, str], torch: Any) -> InstanceStart:
    """Reads what ``TritonPythonModel.initialize(args)`` needs and sets torch's threads from the config's
    TORCH_THREADS parameter (default 1: several instances and the services share the cores). A GPU instance runs
    on its device only when CUDA is there; otherwise on the CPU."""
    version_dir = os.path.join(args["model_repository"], args["model_version"])
    with open(os.path.join(version_dir, "meta.json")) as f:
        meta = json.load(f)
    config = json.loads(args["model_config"])
    threads = int(config.get("parameters", {}).get("TORCH_THREADS", {}).get("string_value", "1"))
    torch.set_num_threads(max(1, threads))
    on_gpu = args.get("model_instance_kind") == "GPU" and torch.cuda.is_available()
    device = f"cuda:{args.get('model_instance_device_id', '0')}" if on_gpu else "cpu"
    return InstanceStart(version_dir, meta, config, device)
