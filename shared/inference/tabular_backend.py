"""Triton python-backend model for tabular models: a TorchScript module over typed tensor inputs.

Copied into each version folder of a ``tabular`` model as ``model.py`` (with backend_runtime.py) by
shared/learning/registry.py; loads ``<version>/<meta.json "torchscript">`` and calls it with the config's inputs, in
the config's order, returning its outputs under the config's output names (ctr_model: CAT, NUM, AD_TEXT, USER_TEXT
-> PROB, CONTRIB). A batch whose requests all ask for the first output only is answered by the module's ``predict``
when it has one (ctr_model: PROB in one pass instead of 1 + fields passes for CONTRIB). Imports nothing of the
platform: it runs in Triton's own Python process. Dynamic batching hands several requests at once; they are scored
as one batch and split back."""

import os

import numpy as np
from backend_runtime import start_instance  # copied beside model.py by the registry


class TritonPythonModel:
    def initialize(self, args):
        import torch

        self.pb = __import__("triton_python_backend_utils")
        self.torch = torch
        version_dir, meta, config, self.device = start_instance(args, torch)
        self.inputs = [i["name"] for i in config["input"]]
        self.outputs = [o["name"] for o in config["output"]]
        path = os.path.join(version_dir, meta.get("torchscript", "model.pt"))
        self.model = torch.jit.load(path, map_location=self.device).eval()
        # a module with an exported ``predict`` computes its first output alone in one pass
        self.first_only = hasattr(self.model, "predict")

    def execute(self, requests):
        pb = self.pb
        try:
            arrays, sizes = _inputs_of(pb, requests, self.inputs)
            wanted = [set(r.requested_output_names()) or set(self.outputs) for r in requests]
            tensors = [self.torch.from_numpy(a).to(self.device) for a in arrays]
            with self.torch.inference_mode():
                # First output alone (ctr_model: PROB without CONTRIB): the module's one-pass ``predict``.
                if self.first_only and all(w == {self.outputs[0]} for w in wanted):
                    answers = (self.model.predict(*tensors),)
                else:
                    answers = self.model(*tensors)
            outputs = dict(zip(self.outputs, (t.cpu().numpy().astype(np.float32) for t in answers)))
        except Exception as exc:  # one error response per request, never an exception out of execute
            return [pb.InferenceResponse(error=pb.TritonError(f"model failed: {exc}")) for _ in requests]
        responses, start = [], 0
        for size, names in zip(sizes, wanted):
            part = slice(start, start + size)
            chosen = [pb.Tensor(name, array[part]) for name, array in outputs.items() if name in names]
            responses.append(pb.InferenceResponse(output_tensors=chosen))
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
