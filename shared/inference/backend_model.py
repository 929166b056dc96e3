"""Triton python-backend model for every model of the platform: a transformers encoder over input TEXT.

What it computes follows the model config's outputs:
- ``EMBEDDING``: L2-normalised mean-pooled sentence embedding (text_encoder);
- ``LOGITS`` + ``PROBS`` (+ ``LABEL``): a sequence classifier. One label = binary: PROBS = sigmoid(a * logit + b)
  with the Platt calibration fitted on held-out data at training time (meta.json "calibration"); several labels:
  softmax, and LABEL is the top label's name (meta.json "labels").

Copied into each version folder as ``model.py`` (with backend_runtime.py, the start-up both backends share) by
shared/learning/registry.py; loads ``<version>/hf`` (a transformers ``save_pretrained`` folder) and
``<version>/meta.json``."""

import os

import numpy as np
from backend_runtime import start_instance  # copied beside model.py by the registry

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


class TritonPythonModel:
    def initialize(self, args):
        import torch
        from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

        self.pb = __import__("triton_python_backend_utils")
        self.torch = torch
        version_dir, meta, config, self.device = start_instance(args, torch)
        self.outputs = {o["name"] for o in config.get("output", [])}
        self.embedding = "EMBEDDING" in self.outputs
        hf = os.path.join(version_dir, "hf")
        self.tokenizer = AutoTokenizer.from_pretrained(hf)
        loader = AutoModel if self.embedding else AutoModelForSequenceClassification
        self.model = loader.from_pretrained(hf).to(self.device).eval()
        self.max_length = int(meta.get("max_length", 128 if self.embedding else 64))
        self.labels = meta.get("labels") or []
        calibration = meta.get("calibration") or {}
        self.cal_a = float(calibration.get("a", 1.0))
        self.cal_b = float(calibration.get("b", 0.0))

    def execute(self, requests):
        pb = self.pb
        try:
            texts, sizes = _texts_of(pb, requests)
            outputs = self._embed(texts) if self.embedding else self._classify(texts)
        except Exception as exc:  # one error response per request, never an exception out of execute
            return [pb.InferenceResponse(error=pb.TritonError(f"model failed: {exc}")) for _ in requests]
        responses, start = [], 0
        for size in sizes:
            part = slice(start, start + size)
            tensors = [pb.Tensor(name, array[part]) for name, array in outputs.items()]
            responses.append(pb.InferenceResponse(output_tensors=tensors))
            start += size
        return responses

    def _encode(self, texts):
        return self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt").to(
            self.device
        )

    def _embed(self, texts):
        torch = self.torch
        with torch.inference_mode():
            batch = self._encode(texts)
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return {"EMBEDDING": pooled.cpu().numpy().astype(np.float32)}

    def _classify(self, texts):
        torch = self.torch
        with torch.inference_mode():
            logits = self.model(**self._encode(texts)).logits.float()
            if logits.shape[1] == 1:
                probs = torch.sigmoid(self.cal_a * logits + self.cal_b)
            else:
                probs = torch.softmax(logits, dim=1)
        probs = probs.cpu().numpy().astype(np.float32)
        out = {"LOGITS": logits.cpu().numpy().astype(np.float32), "PROBS": probs}
        if "LABEL" in self.outputs:
            names = [self.labels[i] if i < len(self.labels) else str(i) for i in probs.argmax(axis=1)]
            out["LABEL"] = np.array(names, dtype=np.object_).reshape(-1, 1)
        return out

    def finalize(self):
        self.model = None


def _texts_of(pb, requests):
    """All requests' TEXT rows as one list (dynamic batching hands several requests at once) and each one's size."""
    texts: list[str] = []
    sizes: list[int] = []
    for request in requests:
        tensor = pb.get_input_tensor_by_name(request, "TEXT")
        if tensor is None:
            raise ValueError("input TEXT is missing")
        raw = tensor.as_numpy().reshape(-1)
        texts.extend(t.decode("utf-8", "replace") if isinstance(t, bytes) else str(t) for t in raw)
        sizes.append(len(raw))
    return texts, sizes
