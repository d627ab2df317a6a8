"""Text embeddings: 1,000 texts cold (model load + embedding) and warm (all from the cache, in a
new embedder as another process would make), and a warm lookup of 100,000 texts. Each step
prints wall time and this process's CPU time (on a shared machine the wall time waits for
others).

    PYTHONPATH=src .venv/bin/python bench/embeddings.py [--texts 1000] [--lookup 100000]
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

from mlcrew.data.embeddings import TextEmbedder

T = TypeVar("T")
WORDS = re.findall(
    r"\S+",
    "the a model data label cat dog train city river price grew fell quickly slowly customer "
    "order refund password reset login ticket shipped late early great bad service phone "
    "screen battery broke works again never always today",
)


def texts(n: int, seed: int = 0) -> list[str]:
    """n distinct sentences of 4 to 40 words."""
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(4, 40)))) + f" #{i}" for i in range(n)]


def timed(what: Callable[[], T]) -> tuple[T, str]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = what()
    return result, f"{time.perf_counter() - wall:.2f} s wall, {time.process_time() - cpu:.2f} s CPU"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--lookup", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        cache = Path(folder) / "embeddings.sqlite3"
        sample = texts(args.texts)

        cold = TextEmbedder(cache=cache)
        _, load = timed(cold._load)
        vectors, took = timed(lambda: cold.embed(sample))
        print(
            f"cold: model load {load}; {args.texts} texts embedded in {took} "
            f"({cold.counts.batches} passes)"
        )

        warm = TextEmbedder(cache=cache)
        again, took = timed(lambda: warm.embed(sample))
        same = again.tobytes() == vectors.tobytes()
        print(
            f"warm: {args.texts} texts in {took}, {warm.counts.embedded} embedded, "
            f"model loaded: {warm.loaded}, same bits: {same}"
        )

        # A large warm cache: vectors stored for `lookup` texts, then all looked up.
        many = texts(args.lookup, seed=1)
        fake = np.random.default_rng(2).standard_normal((len(many), warm.dimension))
        fake = fake.astype(np.float32)
        rows = [(warm.digest(t), v.tobytes()) for t, v in zip(many, fake, strict=True)]
        _, stored = timed(lambda: warm.cache.put(warm.model_key, rows))
        found, took = timed(lambda: warm.embed(many))
        print(
            f"lookup: {len(many)} vectors stored in {stored}, read back in {took} "
            f"({warm.counts.embedded} embedded, equal: {found.tobytes() == fake.tobytes()}); "
            f"cache file {cache.stat().st_size / 1e6:.0f} MB"
        )


if __name__ == "__main__":
    main()
