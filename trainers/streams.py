"""Data that is read batch by batch, never whole: a class-per-folder image tree, or a user's own
streaming source (a ``keras.utils.PyDataset``, or a ``tf.data.Dataset`` under TensorFlow).

``image_folder(root)`` reads a tree as ``keras.utils.image_dataset_from_directory`` lays it out:
``root/<class>/<image>`` split by a fraction and a seed, or ``root/train/<class>/...`` beside
``root/val/<class>/...`` (or ``validation/``). Classes are the subfolder names in sorted order;
images are read as RGB, scaled to [0, 1] and resized (bilinear) to ``image_size`` when it is set
(a trial seeded from a .keras file: to the file's input size), so every backend sees the same
pixels. Listing the tree opens no image; ``ImageFolder.check``
reads every image's header (its size and format, not its pixels) before any training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .data import Batches
from .errors import TrialConfigError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
CHANNELS = 3  # images are read as RGB, as image_dataset_from_directory's default colour mode
PREFIX = "images:"


def _classes(folder: Path, spec: str) -> list[str]:
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise TrialConfigError(
            f"dataset {spec!r}: {folder} has no class subfolders; lay the images out as "
            f"{folder}/<class>/<image> (one folder per class), or train/ and val/ folders of those"
        )
    return classes


def _files(folder: Path, classes: Sequence[str], spec: str) -> tuple[np.ndarray, np.ndarray]:
    """Every image file under ``folder/<class>/`` (sorted) and its class index."""
    files, labels = [], []
    for index, name in enumerate(classes):
        found = sorted(p for p in (folder / name).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise TrialConfigError(
                f"dataset {spec!r}: class folder {folder / name} has no images (files ending in "
                f"{', '.join(IMAGE_SUFFIXES)}); remove it or add its images"
            )
        files += [str(p) for p in found]
        labels += [index] * len(found)
    return np.array(files), np.array(labels, np.int32)


@dataclass(frozen=True)
class ImageFolder:
    """A class-per-folder image tree: its files, split into train and validation, and the size
    its images are read at (``None``: as they are, which must then be one size for all)."""

    name: str
    classes: tuple[str, ...]
    train_files: np.ndarray
    y_train: np.ndarray
    val_files: np.ndarray
    y_val: np.ndarray
    image_size: tuple[int, int] | None = None  # (height, width) the images are read at

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        if self.image_size is None:
            width, height = _header(self.train_files[0], self.name)[0]
            return (height, width, CHANNELS)
        return (*self.image_size, CHANNELS)

    def resized(self, size: int | tuple[int, int] | None) -> ImageFolder:
        """The same tree read at ``size`` x ``size`` (or (height, width); None: unchanged)."""
        if size is None:
            return self
        shape = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        return ImageFolder(
            self.name,
            self.classes,
            self.train_files,
            self.y_train,
            self.val_files,
            self.y_val,
            shape,
        )

    def check(self) -> None:
        """Every image's header readable and, without ``image_size``, every image one size.

        Raises:
            TrialConfigError: naming the unreadable file, or two files of different sizes.
        """
        first = None
        for path in (*self.train_files, *self.val_files):
            size, _ = _header(path, self.name)
            if self.image_size is None:
                first = first or (path, size)
                if size != first[1]:
                    raise TrialConfigError(
                        f"dataset {self.name!r}: images differ in size ({first[0]} is "
                        f"{first[1][0]}x{first[1][1]}, {path} is {size[0]}x{size[1]}); set "
                        f"trial.image_size to read them all at one size"
                    )

    def batches(
        self, batch_size: int, seed: int, steps: int | None = None
    ) -> tuple[ImageBatches, ImageBatches]:
        """(training batches reshuffled every epoch from ``seed``; validation batches in order)."""
        return (
            ImageBatches(self, self.train_files, self.y_train, batch_size, seed=seed, steps=steps),
            ImageBatches(self, self.val_files, self.y_val, batch_size),
        )


def _header(path: str, spec: str) -> tuple[tuple[int, int], str]:
    """(width, height) and format of an image, from its header alone."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.size, str(image.format)
    except (OSError, UnidentifiedImageError) as exc:
        raise TrialConfigError(
            f"dataset {spec!r}: cannot read image {path} ({exc}); replace or remove the file"
        ) from None


def read_image(path: str, size: tuple[int, int] | None, spec: str = "") -> np.ndarray:
    """One image as float32 RGB in [0, 1], resized (bilinear) to ``size`` (height, width) when
    it is set."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
            if size is not None and rgb.size != (size[1], size[0]):
                rgb = rgb.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            return np.asarray(rgb, np.float32) / 255.0
    except OSError as exc:
        raise TrialConfigError(
            f"dataset {spec!r}: cannot read image {path} ({exc}); replace or remove the file"
        ) from None


class ImageBatches(Batches):
    """``Batches`` of image files: the same seeded order, each batch read from disk when asked
    for, so memory holds a batch, never the dataset."""

    def __init__(
        self,
        folder: ImageFolder,
        files: np.ndarray,
        labels: np.ndarray,
        batch_size: int,
        seed: int | None = None,
        steps: int | None = None,
    ) -> None:
        super().__init__(files, labels, batch_size, seed=seed, steps=steps)
        self.folder = folder

    def take(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        size = self.folder.image_size
        images = [read_image(self.x[r], size, self.folder.name) for r in rows]
        return np.stack(images), self.y[rows]

    def for_fit(self) -> Any:
        if self._feed is None:
            from .data import py_dataset

            self._feed = py_dataset(self)
        return self._feed


def _root(spec: str) -> Path:
    root = Path(spec[len(PREFIX) :]).expanduser()
    if not root.is_dir():
        raise TrialConfigError(
            f"dataset {spec!r}: folder {root} does not exist; give 'images:<folder>' with one "
            f"subfolder of images per class"
        )
    return root


def image_folder(spec: str, seed: int = 0, validation_split: float = 0.2) -> ImageFolder:
    """The tree ``images:<root>`` names, listed (no image opened).

    Raises:
        TrialConfigError: a missing folder, no class subfolders, a class without images.
    """
    root = _root(spec)
    val_dir = next((root / n for n in ("val", "validation") if (root / n).is_dir()), None)
    if (root / "train").is_dir() and val_dir is not None:
        classes = _classes(root / "train", spec)
        val_classes = _classes(val_dir, spec)
        if val_classes != classes:
            raise TrialConfigError(
                f"dataset {spec!r}: train/ has classes {classes} but {val_dir.name}/ has "
                f"{val_classes}; both need the same class folders"
            )
        x_train, y_train = _files(root / "train", classes, spec)
        x_val, y_val = _files(val_dir, classes, spec)
    else:
        classes = _classes(root, spec)
        files, labels = _files(root, classes, spec)
        if len(files) < 2:
            raise TrialConfigError(
                f"dataset {spec!r}: {len(files)} image, too few to split into train and "
                f"validation; add images"
            )
        order = np.random.default_rng(seed).permutation(len(files))
        n_val = min(max(1, int(round(len(files) * validation_split))), len(files) - 1)
        val, train = np.sort(order[:n_val]), np.sort(order[n_val:])
        x_train, y_train, x_val, y_val = files[train], labels[train], files[val], labels[val]
    return ImageFolder(spec, tuple(classes), x_train, y_train, x_val, y_val)


def folder_classes(spec: str) -> int:
    """How many classes ``images:<root>`` has, from its folder names alone."""
    root = _root(spec)
    base = root / "train" if (root / "train").is_dir() else root
    return len(_classes(base, spec))


# ----- a user's own streaming source ----------------------------------------------------------
@dataclass(frozen=True)
class Stream:
    """A user's streaming train and validation sources (each yields ``(x, y)`` batches) and the
    number of classes: what a ``module:function`` dataset returns as ``(train, val, classes)``."""

    name: str
    train: Any
    val: Any
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in _first_batch(self.train, self.name)[0].shape[1:])

    def resized(self, size: int | None) -> Stream:
        if size is not None:
            raise TrialConfigError(
                f"dataset {self.name!r} streams its own batches, which trial.image_size cannot "
                f"resize; resize in the source, or unset image_size"
            )
        return self

    def check(self) -> None:
        for split, source in (("train", self.train), ("val", self.val)):
            x, y = _first_batch(source, self.name)
            labels = np.asarray(y)
            if labels.ndim != 1 or len(labels) != len(x):
                raise TrialConfigError(
                    f"dataset {self.name!r}: a {split} batch has labels of shape {labels.shape} "
                    f"for {len(x)} examples; yield (x, y) with one integer label per example"
                )
            if len(labels) and (labels.min() < 0 or labels.max() >= self.num_classes):
                raise TrialConfigError(
                    f"dataset {self.name!r}: a {split} batch has labels {int(labels.min())}.."
                    f"{int(labels.max())}, outside 0..{self.num_classes - 1} for "
                    f"num_classes={self.num_classes}"
                )

    def batches(
        self, batch_size: int, seed: int, steps: int | None = None
    ) -> tuple[StreamBatches, StreamBatches]:
        """The sources as they are (their own batch size and order), training bounded to
        ``steps`` batches an epoch."""
        return StreamBatches(self.train, self.name, steps), StreamBatches(self.val, self.name)


class StreamBatches:
    """A user's source as ``fit`` takes it, with ``Batches``' length and ``set_epoch``."""

    def __init__(self, source: Any, name: str, steps: int | None = None) -> None:
        self.source, self.name, self.steps = source, name, steps
        known = _length(source)
        if known is None and steps is None:
            raise TrialConfigError(
                f"dataset {name!r}: its source does not know its length; set trial.steps_per_epoch"
            )
        self.length = min(v for v in (known, steps) if v is not None)

    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        """The source keeps its own order."""

    def batch(self, index: int) -> tuple[Any, Any]:
        """Batch ``index`` of the source."""
        if _is_tf_data(self.source):
            return next(iter(self.source.skip(index).take(1).as_numpy_iterator()))
        x, y = self.source[index][:2]
        return x, y

    def for_fit(self) -> Any:
        if self.steps is None or self.steps >= (_length(self.source) or self.steps + 1):
            return self.source
        if _is_tf_data(self.source):
            return self.source.take(self.steps)
        from .data import py_dataset

        return py_dataset(_Bounded(self.source, self.steps))


@dataclass(frozen=True)
class _Bounded:
    """The first ``steps`` batches of a ``PyDataset``, as ``py_dataset`` reads them."""

    source: Any
    steps: int

    def __len__(self) -> int:
        return self.steps

    def batch(self, index: int) -> tuple[Any, Any]:
        return self.source[index]


def _is_tf_data(source: Any) -> bool:
    return type(source).__module__.startswith("tensorflow")


def _length(source: Any) -> int | None:
    if _is_tf_data(source):
        n = int(source.cardinality())
        return n if n >= 0 else None
    try:
        return len(source)
    except TypeError:
        return None


def _first_batch(source: Any, name: str) -> tuple[np.ndarray, Any]:
    if _is_tf_data(source):
        x, y = next(iter(source.take(1).as_numpy_iterator()))
    else:
        x, y = source[0][:2]
    return np.asarray(x), y


def as_stream(result: Any, spec: str) -> Stream | None:
    """A ``module:function``'s ``(train, val, num_classes)`` of streaming sources as a Stream
    (None when it returned something else).

    Raises:
        TrialConfigError: a source that is neither a PyDataset nor (under TensorFlow) tf.data.
    """
    from .morphnet.keras3.backend import BACKEND, keras

    if not (isinstance(result, tuple) and len(result) == 3):
        return None
    train, val, classes = result
    sources = (train, val)
    if not any(isinstance(s, keras.utils.PyDataset) or _is_tf_data(s) for s in sources):
        return None
    for source in sources:
        if _is_tf_data(source) and BACKEND != "tensorflow":
            raise TrialConfigError(
                f"dataset {spec!r} returned a tf.data.Dataset, which only the tensorflow "
                f"backend reads; return a keras.utils.PyDataset instead, or use backend: "
                f"tensorflow"
            )
        if not (isinstance(source, keras.utils.PyDataset) or _is_tf_data(source)):
            raise TrialConfigError(
                f"dataset {spec!r} returned a {type(source).__name__} beside a streaming "
                f"source; return (train, val, num_classes) with both keras.utils.PyDataset "
                f"(or tf.data.Dataset under TensorFlow)"
            )
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 2:
        raise TrialConfigError(
            f"dataset {spec!r} returned num_classes={classes!r}; give the number of classes "
            f"(an int >= 2) as the third element"
        )
    return Stream(spec, train, val, classes)
