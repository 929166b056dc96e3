"""Triton python-backend model for tabular models: a TorchScript module over typed tensor inputs.

Copied into each version folder of a ``tabular`` model as ``model.py`` by shared/learning/registry.py; loads
``<version>/<meta.json "torchscript">`` and calls it with the config's inputs, in the config's order, returning its
outputs under the config's output names (ctr_model: CAT, NUM, AD_TEXT, USER_TEXT -> PROB, CONTRIB). Imports nothing
of the platform: it runs in Triton's own Python process. Dynamic batching hands several requests at once; they are
scored as one batch and split back."""

import json
import os

import numpy as np


class TritonPythonModel:
    def initialize(self, args):
        import torch

        self.pb = __import__("triton_python_backend_utils")
        self.torch = torch
        version_dir = os.path.join(args["model_repository"], args["model_version"])
        with open(os.path.join(version_dir, "meta.json")) as f:
            meta = json.load(f)
        config = json.loads(args["model_config"])
        threads = int(config.get("parameters", {}).get("TORCH_THREADS", {}).get("string_value", "1"))
        torch.set_num_threads(max(1, threads))
        self.inputs = [i["name"] for i in config["input"]]
        self.outputs = [o["name"] for o in config["output"]]
        on_gpu = args.get("model_instance_kind") == "GPU" and torch.cuda.is_available()
        self.device = f"cuda:{args.get('model_instance_device_id', '0')}" if on_gpu else "cpu"
        path = os.path.join(version_dir, meta.get("torchscript", "model.pt"))
        self.model = torch.jit.load(path, map_location=self.device).eval()

    def execute(self, requests):
        pb = self.pb
        try:
            arrays, sizes = _inputs_of(pb, requests, self.inputs)
            with self.torch.inference_mode():
                answers = self.model(*(self.torch.from_numpy(a).to(self.device) for a in arrays))
            outputs = [t.cpu().numpy().astype(np.float32) for t in answers]
        except Exception as exc:  # one error response per request, never an exception out of execute
            return [pb.InferenceResponse(error=pb.TritonError(f"model failed: {exc}")) for _ in requests]
        responses, start = [], 0
        for size in sizes:
            part = slice(start, start + size)
            tensors = [pb.Tensor(name, array[part]) for name, array in zip(self.outputs, outputs)]
            responses.append(pb.InferenceResponse(output_tensors=tensors))
            start += size
        return responses

    def finalize(self):
        self.model = None


def _inputs_of(pb, requests, names):
    """Each input of all requests concatenated along the batch axis, and each request's row count."""
    columns: dict[str, list[np.ndarray]] = {name: [] for name in names}
    sizes = []
    for request in requests:
        rows = None
        for name in names:
            tensor = pb.get_input_tensor_by_name(request, name)
            if tensor is None:
                raise ValueError(f"input {name} is missing")
            array = tensor.as_numpy()
            columns[name].append(array)
            rows = len(array) if rows is None else rows
            if len(array) != rows:
                raise ValueError(f"input {name} has {len(array)} rows, expected {rows}")
        sizes.append(rows or 0)
    return [np.ascontiguousarray(np.concatenate(columns[name])) for name in names], sizes
