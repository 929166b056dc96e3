"""Triton python-backend model for reply_generator: a Hugging Face causal LM in decoupled mode.

One request = one PROMPT (string) and an optional MAX_TOKENS (int32). The model continues the prompt greedily, one
token at a time with its key/value cache, and sends one response per new piece of text through the request's
response sender the moment it is decoded (the last response carries the FINAL flag), so a client sees the first words
long before the reply is complete. Generation stops at the tokenizer's end-of-sequence token, at MAX_TOKENS (capped
by meta.json "max_new_tokens"), or when the client cancelled the request.

``execute`` hands each request to a small thread pool and returns at once (decoupled models may answer later), so
several conversations generate at the same time; the config's GENERATE_THREADS parameter sizes the pool.

Copied into each version folder as ``model.py`` (with backend_runtime.py) by shared/learning/registry.py; loads
``<version>/hf`` (``save_pretrained`` of a causal LM and its tokenizer) and ``<version>/meta.json``. Runs in Triton's
own Python process and imports nothing of the platform."""

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from backend_runtime import start_instance  # copied beside model.py by the registry

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


class TritonPythonModel:
    def initialize(self, args):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.pb = __import__("triton_python_backend_utils")
        self.torch = torch
        version_dir, meta, config, self.device = start_instance(args, torch)
        if not self.pb.using_decoupled_model_transaction_policy(config):
            raise ValueError("reply_generator must be served in decoupled mode (model_transaction_policy)")
        hf = os.path.join(version_dir, "hf")
        self.tokenizer = AutoTokenizer.from_pretrained(hf)
        self.model = AutoModelForCausalLM.from_pretrained(hf).to(self.device).eval()
        self.max_new_tokens = int(meta.get("max_new_tokens", 128))
        self.max_prompt_tokens = int(meta.get("max_prompt_tokens", 192))
        self.eos = self.tokenizer.eos_token_id
        threads = int(config.get("parameters", {}).get("GENERATE_THREADS", {}).get("string_value", "4"))
        self.pool = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="generate")

    def execute(self, requests):
        """Reads each request's inputs here, then answers it on the pool through its response sender."""
        pb = self.pb
        for request in requests:
            sender = request.get_response_sender()
            try:
                prompt, limit = self._read(request)
            except Exception as exc:  # a bad request: its one error response, the others still run
                sender.send(
                    pb.InferenceResponse(error=pb.TritonError(str(exc))), flags=pb.TRITONSERVER_RESPONSE_COMPLETE_FINAL
                )
                continue
            self.pool.submit(self._answer, request, sender, prompt, limit)
        return None

    def _answer(self, request, sender, prompt, limit):
        pb = self.pb
        try:
            for piece in self._generate(prompt, limit, request):
                text = np.array([piece.encode("utf-8")], dtype=np.object_)
                sender.send(pb.InferenceResponse(output_tensors=[pb.Tensor("TEXT", text)]))
            sender.send(flags=pb.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        except Exception as exc:  # an error response, never an exception out of the thread
            sender.send(
                pb.InferenceResponse(error=pb.TritonError(f"generation failed: {exc}")),
                flags=pb.TRITONSERVER_RESPONSE_COMPLETE_FINAL,
            )

    def _read(self, request):
        pb = self.pb
        prompt = pb.get_input_tensor_by_name(request, "PROMPT")
        if prompt is None:
            raise ValueError("input PROMPT is missing")
        raw = prompt.as_numpy().reshape(-1)[0]
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        limit = pb.get_input_tensor_by_name(request, "MAX_TOKENS")
        wanted = int(limit.as_numpy().reshape(-1)[0]) if limit is not None else self.max_new_tokens
        return text, max(1, min(wanted, self.max_new_tokens))

    def _generate(self, prompt, limit, request):
        """Greedy decoding; yields each new piece of decoded text (decoding the whole continuation each step keeps
        multi-byte characters and merged tokens right, and a piece ending in a partial character waits)."""
        torch = self.torch
        ids = self.tokenizer(prompt, return_tensors="pt").input_ids[:, -self.max_prompt_tokens :].to(self.device)
        generated, sent, past = [], "", None
        with torch.inference_mode():
            for _ in range(limit):
                if _cancelled(request):
                    return
                out = self.model(input_ids=ids, past_key_values=past, use_cache=True)
                past = out.past_key_values
                token = int(out.logits[0, -1].argmax())
                if token == self.eos:
                    break
                generated.append(token)
                ids = torch.tensor([[token]], device=self.device)
                text = str(
                    self.tokenizer.decode(generated, skip_special_tokens=True, clean_up_tokenization_spaces=False)
                )
                if len(text) > len(sent) and not text.endswith("\ufffd"):
                    yield text[len(sent) :]
                    sent = text

    def finalize(self):
        self.pool.shutdown(wait=True)
        self.model = None


def _cancelled(request):
    check = getattr(request, "is_cancelled", None)  # python backends before 23.10 cannot tell
    return bool(check()) if check is not None else False
