"""Triton python-backend model: text -> class logits and probabilities (and the top label when the model
config declares a LABEL output). One label = binary: PROBS = sigmoid(a * logit + b) with the Platt calibration
fitted on held-out data at training time (meta.json "calibration"); several labels: softmax.

Copied into each version folder as ``model.py`` by shared/model_registry.py; loads ``<version>/hf``
(a transformers ``save_pretrained`` folder of a sequence-classification model) and ``<version>/meta.json``."""
import json
import os

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


class TritonPythonModel:
    def initialize(self, args):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.pb = __import__("triton_python_backend_utils")
        self.torch = torch
        version_dir = os.path.join(args["model_repository"], args["model_version"])
        with open(os.path.join(version_dir, "meta.json")) as f:
            self.meta = json.load(f)
        config = json.loads(args["model_config"])
        threads = int(config.get("parameters", {}).get("TORCH_THREADS", {}).get("string_value", "1"))
        torch.set_num_threads(max(1, threads))
        self.outputs = {o["name"] for o in config.get("output", [])}
        on_gpu = args.get("model_instance_kind") == "GPU" and torch.cuda.is_available()
        self.device = f"cuda:{args.get('model_instance_device_id', '0')}" if on_gpu else "cpu"
        hf = os.path.join(version_dir, "hf")
        self.tokenizer = AutoTokenizer.from_pretrained(hf)
        self.model = AutoModelForSequenceClassification.from_pretrained(hf).to(self.device).eval()
        self.max_length = int(self.meta.get("max_length", 64))
        self.labels = self.meta.get("labels") or []
        calibration = self.meta.get("calibration") or {}
        self.cal_a = float(calibration.get("a", 1.0))
        self.cal_b = float(calibration.get("b", 0.0))

    def execute(self, requests):
        pb = self.pb
        try:
            texts, sizes = _texts_of(pb, requests)
            logits, probs = self._predict(texts)
        except Exception as exc:  # one error response per request, never an exception out of execute
            return [pb.InferenceResponse(error=pb.TritonError(f"classifier failed: {exc}")) for _ in requests]
        responses, start = [], 0
        for size in sizes:
            part = slice(start, start + size)
            tensors = [pb.Tensor("LOGITS", logits[part]), pb.Tensor("PROBS", probs[part])]
            if "LABEL" in self.outputs:
                top = probs[part].argmax(axis=1)
                names = [self.labels[i] if i < len(self.labels) else str(i) for i in top]
                tensors.append(pb.Tensor("LABEL", np.array(names, dtype=np.object_).reshape(-1, 1)))
            responses.append(pb.InferenceResponse(output_tensors=tensors))
            start += size
        return responses

    def _predict(self, texts):
        torch = self.torch
        with torch.inference_mode():
            batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                                   return_tensors="pt").to(self.device)
            logits = self.model(**batch).logits.float()
            if logits.shape[1] == 1:
                probs = torch.sigmoid(self.cal_a * logits + self.cal_b)
            else:
                probs = torch.softmax(logits, dim=1)
        return logits.cpu().numpy().astype(np.float32), probs.cpu().numpy().astype(np.float32)

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
