"""Make what a user with a real workload brings: a folder of images per class and a network
already trained on them, saved as ``seed.keras``; both from data made offline (shapes32).

    .venv/bin/python sweep/examples/make_real_workload.py [--out morphsweep_runs/workload]
    .venv/bin/morphsweep run sweep/examples/sweep_real_workload.yaml

Writes ``<out>/images/train/<class>/*.png`` and ``<out>/images/val/<class>/*.png`` (shapes32's
10 classes, 32x32 RGB) and ``<out>/seed.keras`` (zoo ResNet width 16, trained on the folder as
a trial streams it), and prints the seed's validation accuracy.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

CLASSES = tuple(
    f"{shape}_{texture}"
    for shape in ("disc", "square", "triangle", "cross", "ring")
    for texture in ("stripes", "dots")
)


def write_images(out: Path, samples: int, copies: int = 1) -> Path:
    """shapes32 as PNG files under ``out/images/{train,val}/<class>/``; ``copies`` repeats the
    set (a bigger folder of the same images, for streaming measurements)."""
    from PIL import Image

    from trainers.data import shapes32

    data = shapes32(samples=samples)
    root = out / "images"
    for split, x, y in (("train", data.x_train, data.y_train), ("val", data.x_val, data.y_val)):
        for name in CLASSES:
            (root / split / name).mkdir(parents=True, exist_ok=True)
        for copy in range(copies):
            for n, (image, label) in enumerate(zip(x, y, strict=True)):
                pixels = np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
                path = root / split / CLASSES[int(label)] / f"{copy:03d}_{n:05d}.png"
                Image.fromarray(pixels).save(path)
    return root


def train_seed(images: Path, out: Path, epochs: int, width: int) -> float:
    """A zoo ResNet trained on the folder, saved as ``out/seed.keras``; its validation accuracy."""
    from trainers.data import load_dataset
    from trainers.models import build_model
    from trainers.morphnet.keras3.backend import keras
    from trainers.training import compile_for_training

    data = load_dataset(f"images:{images}")
    train, val = data.batches(64, seed=0)
    model = build_model("zoo:resnet", data.input_shape, data.num_classes, width, seed=0)
    compile_for_training(model, keras.optimizers.Adam(3e-3), jit_compile=False)
    model.fit(train.for_fit(), validation_data=val.for_fit(), epochs=epochs, verbose=2)
    model.save(str(out / "seed.keras"))
    return float(model.evaluate(val.for_fit(), verbose=0, return_dict=True)["accuracy"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="morphsweep_runs/workload", help="where to write")
    parser.add_argument("--samples", type=int, default=3000, help="images (80%% train)")
    parser.add_argument("--epochs", type=int, default=12, help="the seed's training epochs")
    parser.add_argument("--width", type=int, default=16, help="the seed ResNet's width")
    args = parser.parse_args(argv)
    out = Path(args.out)
    images = write_images(out, args.samples)
    print(f"wrote {images} ({len(list(images.rglob('*.png')))} images)")
    accuracy = train_seed(images, out, args.epochs, args.width)
    print(f"wrote {out / 'seed.keras'}: validation accuracy {accuracy:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
