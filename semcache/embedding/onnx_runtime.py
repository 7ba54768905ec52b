"""A small runtime for BERT-style ONNX graphs whose weights live in a safetensors file.

The graph ships in the package without its weights: every large initializer is an external-data
reference that ``SessionOptions.add_external_initializers`` fills at load time from the model
package's ``model.safetensors`` (read with ``safetensors.numpy``). A manifest next to the graph maps
initializer names to tensor names (``scripts/export_onnx.py`` writes both). Texts are tokenized with
``tokenizers`` from the package's ``tokenizer.json``: single texts or text pairs, so a cross-encoder
graph runs here as well as the embedding model.

Nothing heavy is imported until :meth:`OnnxModel.load` (or the first :meth:`OnnxModel.run`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from semcache.core.lru import LRU

Array = npt.NDArray[Any]
TextInput = str | tuple[str, str]
# (graph output for one padded batch, its attention mask) -> one row per text
Reduce = Callable[[Array, Array], Array]


@dataclass(frozen=True)
class GraphSpec:
    """Where a graph, its weights and its tokenizer are, and how they fit together.

    Args:
        graph: the ``.onnx`` file (initializers as external-data references).
        weights: the ``.safetensors`` file holding the initializers' values.
        tokenizer: the ``tokenizer.json`` file.
        initializers: graph initializer name -> safetensors tensor name.
        max_length: tokens per text (or pair) after truncation.
        output: the graph output to return.
        dimension: the size of the output's last axis, when the manifest records it.
        overlay: a ``.safetensors`` file whose tensors replace those of the same names in
            ``weights`` (a fine-tuned copy of some layers, such as the verifier's encoder; fp16
            values are widened to float32).
    """

    graph: Path
    weights: Path
    tokenizer: Path
    initializers: Mapping[str, str]
    max_length: int = 256
    output: str = "last_hidden_state"
    dimension: int | None = None
    overlay: Path | None = None

    @classmethod
    def from_manifest(cls, manifest: Path, model_dir: Path) -> GraphSpec:
        """The spec described by an exporter manifest, with weights and tokenizer in ``model_dir``."""
        meta = json.loads(manifest.read_text())
        return cls(
            graph=manifest.parent / meta["graph"],
            weights=model_dir / meta["weights"],
            tokenizer=model_dir / meta["tokenizer"],
            initializers=dict(meta["initializers"]),
            max_length=int(meta["max_length"]),
            output=str(meta["output"]),
            dimension=int(meta["dimension"]) if "dimension" in meta else None,
        )


class OnnxModel:
    """One ONNX Runtime session and its tokenizer, loaded on first use; safe to share across threads.

    Args:
        spec: the graph, weights and tokenizer.
        threads: intra-op threads. One short text on two contended cores runs faster on one thread,
            so the default is 1; raise it for bulk work.

    >>> model = OnnxModel(spec)                           # doctest: +SKIP
    >>> hidden = model.run(["a text"], reduce=lambda out, mask: out[:, 0])  # doctest: +SKIP
    """

    def __init__(self, spec: GraphSpec, *, threads: int = 1) -> None:
        if threads < 1:
            raise ValueError("threads must be at least 1")
        self.spec = spec
        self.threads = threads
        self._lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Any = None
        self._inputs: tuple[str, ...] = ()
        self.recent: LRU[str, TokenRows] = LRU(RECENT)
        """The token rows of the last short texts :meth:`tokens` ran with ``keep``."""

    @classmethod
    def shared(cls, spec: GraphSpec, *, threads: int = 1) -> OnnxModel:
        """The process's one model for this graph, weights and thread count: the default embedder
        and the verifier hold the same session (one copy of the weights) and the same recent rows,
        so the verifier does not run the model again on a query the embedder has just embedded."""
        key = (spec.graph, spec.weights, spec.overlay, spec.tokenizer, threads)
        with _SHARED_LOCK:
            model = _SHARED.get(key)
            if model is None:
                model = _SHARED[key] = cls(spec, threads=threads)
            return model

    @classmethod
    def forget_shared(cls) -> None:
        """Drop the token rows every shared model remembers (:attr:`recent`): the next verifier
        call on those texts runs the model again, as in a process that never saw them."""
        with _SHARED_LOCK:
            models = list(_SHARED.values())
        for model in models:
            model.recent.clear()

    @classmethod
    def ran(cls, text: str) -> bool:
        """Whether a shared model remembers the token rows of ``text`` (:attr:`recent`)."""
        with _SHARED_LOCK:
            models = list(_SHARED.values())
        return any(text in model.recent for model in models)

    def load(self) -> OnnxModel:
        """Read the tokenizer, the graph and its weights now (idempotent)."""
        with self._lock:
            if self._session is None:
                self._tokenizer = _tokenizer(self.spec)
                self._session = _session(self.spec, self.threads)
                self._inputs = tuple(i.name for i in self._session.get_inputs())
        return self

    def run(self, texts: Sequence[TextInput], *, reduce: Reduce, batch_size: int = 64) -> Array:
        """``reduce`` of the graph output for each text (or pair), in the order given (batched as
        :meth:`_batches` says)."""
        if not texts:
            raise ValueError("run needs at least one text")
        rows: list[Array] = []
        order: list[int] = []
        for batch, _, out, mask in self._batches(texts, batch_size):
            rows.append(reduce(out, mask))
            order += batch
        result = np.concatenate(rows)
        return result[np.argsort(order, kind="stable")]

    def tokens(
        self, texts: Sequence[str], *, keep: bool = False, batch_size: int = 64
    ) -> list[TokenRows]:
        """Each text's token ids and unpadded output rows, in order; with ``keep``, short
        texts are remembered in :attr:`recent` (a lookup's query, a stored entry's text)."""
        out: list[TokenRows] = [None] * len(texts)  # type: ignore[list-item]  # all set below
        for batch, encodings, hidden, _ in self._batches(texts, batch_size):
            for row, (i, encoding) in enumerate(zip(batch, encodings, strict=True)):
                n = len(encoding.ids)
                ids = np.asarray(encoding.ids, dtype=np.int64)
                out[i] = TokenRows(ids, hidden[row, :n])
                if keep and n <= KEEP_TOKENS:  # kept as float16: half the memory
                    self.recent.put(texts[i], TokenRows(ids, hidden[row, :n].astype(np.float16)))
        return out

    def _batches(
        self, texts: Sequence[TextInput], batch_size: int
    ) -> Iterator[tuple[list[int], list[Any], Array, Array]]:
        """The texts sorted by length and run in batches of ``batch_size`` padded to their longest
        member (a long text does not pad every other one): each batch's positions in ``texts``,
        encodings, graph output and attention mask."""
        if not texts:
            return
        self.load()
        encodings = self._tokenizer.encode_batch(list(texts))
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")
        for start in range(0, len(order), batch_size):
            batch = [int(i) for i in order[start : start + batch_size]]
            chosen = [encodings[i] for i in batch]
            feeds = _feeds(chosen, self._inputs)
            (out,) = self._session.run([self.spec.output], feeds)
            yield batch, chosen, out, feeds["attention_mask"]


@dataclass(frozen=True, slots=True)
class TokenRows:
    """One text through the graph: its token ids and the output row of each token."""

    ids: npt.NDArray[np.int64]
    hidden: npt.NDArray[np.floating[Any]]
    """(tokens, dimension): float32 as run, float16 as remembered."""


RECENT = 512
"""Texts whose token rows a model remembers (at most ~50 MB at :data:`KEEP_TOKENS`, ~8 MB for
typical 20-token questions)."""
KEEP_TOKENS = 128
_SHARED: dict[tuple[Path, Path, Path | None, Path, int], OnnxModel] = {}
_SHARED_LOCK = threading.Lock()


def _feeds(encodings: Sequence[Any], inputs: Sequence[str]) -> dict[str, Array]:
    """Right-padded int64 input_ids / attention_mask / token_type_ids, as many as the graph takes."""
    width = max(len(e.ids) for e in encodings)
    arrays = {name: np.zeros((len(encodings), width), dtype=np.int64) for name in _FIELDS}
    for row, enc in enumerate(encodings):
        n = len(enc.ids)
        for name, field in _FIELDS.items():
            arrays[name][row, :n] = getattr(enc, field)
    return {name: arrays[name] for name in inputs}


_FIELDS = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}


def _tokenizer(spec: GraphSpec) -> Any:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(spec.tokenizer))
    tokenizer.no_padding()  # padded per batch in _feeds
    tokenizer.enable_truncation(spec.max_length)
    return tokenizer


def _overlay(spec: GraphSpec, tensors: Mapping[str, Array]) -> dict[str, Array]:
    """The overlay's tensors as float32; each must replace one the graph reads, in its shape (an
    overlay of other names or shapes would change nothing, or break the graph, without a word)."""
    from safetensors.numpy import load_file

    overlay = load_file(str(spec.overlay))
    used = set(spec.initializers.values())
    wrong = sorted(k for k, v in overlay.items()
                   if k not in used or k not in tensors or v.shape != tensors[k].shape)  # fmt: skip
    if wrong:
        raise ValueError(f"{spec.overlay}: tensors {wrong[:3]} replace none of the graph's")
    return {k: v.astype(np.float32) for k, v in overlay.items()}


def _session(spec: GraphSpec, threads: int) -> Any:
    import onnxruntime as ort
    from safetensors.numpy import load_file

    tensors = load_file(str(spec.weights))
    if spec.overlay is not None:
        tensors.update(_overlay(spec, tensors))
    missing = sorted(set(spec.initializers.values()) - set(tensors))
    if missing:
        raise ValueError(f"{spec.weights} lacks the tensors {missing[:3]} the graph needs")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # warnings about unused initializers are noise here
    names = list(spec.initializers)
    values = [ort.OrtValue.ortvalue_from_numpy(tensors[spec.initializers[n]]) for n in names]
    options.add_external_initializers(names, values)
    # ORT copies the values into the graph during construction; the arrays may go after it.
    return ort.InferenceSession(
        str(spec.graph), sess_options=options, providers=["CPUExecutionProvider"]
    )
