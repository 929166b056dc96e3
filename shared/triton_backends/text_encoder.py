"""Triton python-backend model: text -> L2-normalised mean-pooled sentence embedding.

Copied into each version folder as ``model.py`` by shared/model_registry.py; loads ``<version>/hf``
(a transformers ``save_pretrained`` folder) and ``<version>/meta.json``."""
import json
import os

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


class TritonPythonModel:
    def initialize(self, args):
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.pb = __import__("triton_python_backend_utils")
        self.torch = torch
        version_dir = os.path.join(args["model_repository"], args["model_version"])
        with open(os.path.join(version_dir, "meta.json")) as f:
            self.meta = json.load(f)
        config = json.loads(args["model_config"])
        threads = int(config.get("parameters", {}).get("TORCH_THREADS", {}).get("string_value", "1"))
        torch.set_num_threads(max(1, threads))
        on_gpu = args.get("model_instance_kind") == "GPU" and torch.cuda.is_available()
        self.device = f"cuda:{args.get('model_instance_device_id', '0')}" if on_gpu else "cpu"
        hf = os.path.join(version_dir, "hf")
        self.tokenizer = AutoTokenizer.from_pretrained(hf)
        self.model = AutoModel.from_pretrained(hf).to(self.device).eval()
        self.max_length = int(self.meta.get("max_length", 128))

    def execute(self, requests):
        pb = self.pb
        try:
            texts, sizes = _texts_of(pb, requests)
            vectors = self._embed(texts)
        except Exception as exc:  # one error response per request, never an exception out of execute
            return [pb.InferenceResponse(error=pb.TritonError(f"text_encoder failed: {exc}")) for _ in requests]
        responses, start = [], 0
        for size in sizes:
            out = pb.Tensor("EMBEDDING", vectors[start:start + size])
            responses.append(pb.InferenceResponse(output_tensors=[out]))
            start += size
        return responses

    def _embed(self, texts):
        torch = self.torch
        with torch.inference_mode():
            batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                                   return_tensors="pt").to(self.device)
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return pooled.cpu().numpy().astype(np.float32)

    def finalize(self):
        self.model = None


def _texts_of(pb, requests):
    """All requests' TEXT rows as one list (dynamic batching hands several requests at once) and each one's size."""
    texts, sizes = [], []
    for request in requests:
        tensor = pb.get_input_tensor_by_name(request, "TEXT")
        if tensor is None:
            raise ValueError("input TEXT is missing")
        raw = tensor.as_numpy().reshape(-1)
        texts.extend(t.decode("utf-8", "replace") if isinstance(t, bytes) else str(t) for t in raw)
        sizes.append(len(raw))
    return texts, sizes
