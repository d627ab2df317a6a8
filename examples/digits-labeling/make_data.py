"""Re-make this example's data from scikit-learn's bundled handwritten digits.

Deterministic: the same scikit-learn digits give byte-identical files. Run it from anywhere:
`python examples/digits-labeling/make_data.py`. It writes
- data/digits.csv: one row per image (`item`, the 64 pixel intensities 0-16, `image`),
- images/<item>.png: each 8x8 image upscaled (nearest) to 32x32, dark ink on white,
- data/gold.csv: the true label of a seeded 5% sample (gold questions for labelers),
- data/truth.csv: every true label, for the scenario and the benchmarks only; the labeling
  section never names it, so the app never shows it.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

HERE = Path(__file__).resolve().parent
SCALE = 4  # 8x8 -> 32x32: big enough to read, a few hundred bytes per PNG
GOLD_SHARE = 0.05
SEED = 7


def item_id(index: int) -> str:
    return f"d{index:04d}"


def png_bytes(pixels: np.ndarray) -> bytes:
    """An 8x8 array of intensities 0-16 as a crisp grayscale PNG (ink dark, paper white)."""
    grey = (255 - np.rint(pixels * (255 / 16))).astype(np.uint8)
    image = Image.fromarray(grey, mode="L").resize((8 * SCALE, 8 * SCALE), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    tmp.replace(path)


def main() -> None:
    digits = load_digits()
    images: np.ndarray = digits.images
    target: np.ndarray = digits.target
    pixel_columns = [f"px{r}{c}" for r in range(8) for c in range(8)]
    items = [item_id(i) for i in range(len(target))]

    (HERE / "images").mkdir(exist_ok=True)
    for item, pixels in zip(items, images, strict=True):
        (HERE / "images" / f"{item}.png").write_bytes(png_bytes(pixels))

    write_csv(
        HERE / "data" / "digits.csv",
        ["item", *pixel_columns, "image"],
        [
            [item, *(int(v) for v in pixels.ravel()), f"images/{item}.png"]
            for item, pixels in zip(items, images, strict=True)
        ],
    )
    write_csv(
        HERE / "data" / "truth.csv",
        ["item", "label"],
        [[item, int(label)] for item, label in zip(items, target, strict=True)],
    )
    rng = np.random.default_rng(SEED)
    gold = np.sort(rng.choice(len(items), size=round(GOLD_SHARE * len(items)), replace=False))
    write_csv(
        HERE / "data" / "gold.csv",
        ["item", "label"],
        [[items[i], int(target[i])] for i in gold],
    )


if __name__ == "__main__":
    main()
