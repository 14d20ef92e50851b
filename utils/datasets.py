"""Images to train on: CIFAR-10 when it can be had, else a dataset the course generates.

:func:`load_dataset` is the one function that returns the data. It prints (and keeps in
``.line``) one line saying what was asked for and what is used:

* ``"cifar10"``: the real CIFAR-10 (60,000 32x32 colour photographs, 10 classes; Krizhevsky
  2009), read from the Keras cache (``$KERAS_HOME/datasets``, default ``~/.keras/datasets``)
  where ``keras.datasets.cifar10.load_data`` keeps it, and downloaded there by
  ``keras.utils.get_file`` (170 MB, checked against its SHA-256) when it is not. Refused with
  :class:`DatasetError` when it is neither cached nor reachable.
* ``"generated"``: a deterministic dataset of oriented stripe patterns that this module draws
  (one orientation band per class, random frequency, phase, colours and noise), at any
  resolution. A small CNN learns it in an epoch or two; it needs no network, so CI uses it.
* ``"auto"``: CIFAR-10 if it is cached or reachable, otherwise the generated dataset, with one
  line saying why.

:func:`make_pipeline` turns arrays into a ``tf.data`` input pipeline (resize, cache, shuffle,
batch, prefetch); it needs TensorFlow. :func:`array_batches` does the same steps for any Keras
backend (a ``keras.utils.PyDataset``: resized once, reshuffled every epoch), which is what feeds
Keras on JAX where TensorFlow is absent (Colab's TPU runtime). :func:`synthetic_batches` is the
"synthetic data" of GPU benchmarks: one random batch repeated, no input pipeline at all, to
measure the model alone (a ``tf.data`` dataset on the TensorFlow backend, a ``PyDataset``
otherwise).
"""

from __future__ import annotations

import functools
import math
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from utils.errors import ArgumentError, CourseError, whole_number

__all__ = [
    "DATASETS",
    "CIFAR10_CLASSES",
    "CIFAR10_ORIGIN",
    "CIFAR10_SHA256",
    "DatasetError",
    "DatasetArgumentError",
    "ImageDataset",
    "load_dataset",
    "generate_images",
    "cifar10_folder",
    "make_pipeline",
    "array_batches",
    "synthetic_batches",
]

DATASETS = ("auto", "cifar10", "generated")

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")
#: Where keras.datasets.cifar10 downloads CIFAR-10 from, and the archive's SHA-256.
CIFAR10_ORIGIN = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
_CIFAR10_FNAME = "cifar-10-batches-py-target"  # keras 3's cache entry (fname given to get_file)
_CIFAR10_BATCH = 10_000


class DatasetError(CourseError, ValueError):
    """The dataset asked for cannot be loaded; the message says why and what to do."""


class DatasetArgumentError(ArgumentError, DatasetError):
    """A size or count the dataset functions cannot take (a :class:`DatasetError` too)."""


@dataclass
class ImageDataset:
    """Images (uint8, N x H x W x 3) and integer labels (int32, N), split in train and test."""

    name: str  # "cifar10" or "generated"
    x_train: Any
    y_train: Any
    x_test: Any
    y_test: Any
    class_names: tuple[str, ...]
    asked: str = ""
    note: str = ""  # why "auto" fell back, or where the files were found
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_size(self) -> int:
        """Side of the stored (square) images in pixels."""
        return int(self.x_train.shape[1])

    @property
    def line(self) -> str:
        """One line: asked for, what happened, what is used."""
        note = f" {self.note};" if self.note else ""
        return (f"Asked for {self.asked!r};{note} using {self.description}: "
                f"{len(self.x_train):,} training and {len(self.x_test):,} test images of "
                f"{self.image_size}x{self.image_size} pixels, {self.num_classes} classes.")

    def __str__(self) -> str:
        return self.line


# --------------------------------------------------------------------------------------------
# The generated dataset
# --------------------------------------------------------------------------------------------

def generate_images(count: int, resolution: int = 32, num_classes: int = 10, *,
                    seed: int = 0, chunk: int = 512) -> tuple[Any, Any]:
    """Draw ``count`` labelled images of oriented stripes, deterministically from ``seed``.

    Class ``k`` of ``num_classes`` is a grating whose orientation lies in the band
    ``[k, k+1) x 180 / num_classes`` degrees (shrunk by a margin so neighbours do not
    touch); frequency, phase, the two colours, contrast and pixel noise are random, so only
    the orientation tells the classes apart and a network has to look at the structure.

    Returns ``(images uint8 [count, resolution, resolution, 3], labels int32 [count])``.
    """
    import numpy as np

    whole_number(count, "count", minimum=0, error=DatasetArgumentError)
    whole_number(resolution, "resolution", error=DatasetArgumentError)
    whole_number(num_classes, "num_classes", minimum=2, error=DatasetArgumentError)
    rng = np.random.default_rng(seed)
    labels = (np.arange(count) % num_classes).astype(np.int32)
    rng.shuffle(labels)
    images = np.empty((count, resolution, resolution, 3), dtype=np.uint8)
    coords = (np.arange(resolution, dtype=np.float32) + 0.5) / resolution - 0.5
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    band = math.pi / num_classes
    for start in range(0, count, chunk):
        stop = min(count, start + chunk)
        n = stop - start
        k = labels[start:stop].astype(np.float32)
        angle = (k + 0.15 + 0.7 * rng.random(n, dtype=np.float32)) * band
        cycles = rng.uniform(2.0, 5.0, n).astype(np.float32)  # stripes across the image
        phase = rng.uniform(0, 2 * math.pi, n).astype(np.float32)
        wave = np.sin(2 * math.pi * cycles[:, None, None]
                      * (xx * np.cos(angle)[:, None, None] + yy * np.sin(angle)[:, None, None])
                      + phase[:, None, None])
        light = rng.uniform(0.55, 1.0, (n, 1, 1, 3)).astype(np.float32)
        dark = rng.uniform(0.0, 0.45, (n, 1, 1, 3)).astype(np.float32)
        mix = (wave[..., None] + 1) / 2
        pixels = dark + (light - dark) * mix
        pixels += rng.normal(0, 0.06, pixels.shape).astype(np.float32)
        images[start:stop] = np.clip(pixels * 255, 0, 255).astype(np.uint8)
    return images, labels


def _orientation_names(num_classes: int) -> tuple[str, ...]:
    """Class names by the direction of the stripes as an image shows them (row 0 at the top):
    degrees counter-clockwise from horizontal, at the centre of the class's band."""
    band = 180 / num_classes
    return tuple(f"stripes near {(90 - (k + 0.5) * band) % 180:.0f}°" for k in range(num_classes))


# --------------------------------------------------------------------------------------------
# CIFAR-10
# --------------------------------------------------------------------------------------------

def _keras_cache(cache_dir: str | Path | None) -> Path:
    """The Keras cache folder: ``cache_dir``, else ``$KERAS_HOME``, else ``~/.keras``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get("KERAS_HOME"):
        return Path(os.environ["KERAS_HOME"]).expanduser()
    return Path("~/.keras").expanduser()


def _complete(folder: Path) -> bool:
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    return all((folder / name).is_file() for name in names)


def cifar10_folder(cache_dir: str | Path | None = None, *, download: bool = True,
                   timeout_s: float = 30.0) -> Path:
    """The folder holding CIFAR-10's python batches (``data_batch_1`` ... ``test_batch``).

    Looks where Keras keeps them (``<cache>/datasets/cifar-10-batches-py-target/
    cifar-10-batches-py``, or the older ``<cache>/datasets/cifar-10-batches-py``); otherwise,
    with ``download``, fetches and extracts the archive with ``keras.utils.get_file`` (checked
    against :data:`CIFAR10_SHA256`; network operations time out after ``timeout_s``).

    Raises:
        DatasetError: not cached and not downloadable (the message carries the reason).
    """
    datasets = _keras_cache(cache_dir) / "datasets"
    for folder in (datasets / _CIFAR10_FNAME / "cifar-10-batches-py",
                   datasets / "cifar-10-batches-py"):
        if _complete(folder):
            return folder
    if not download:
        raise DatasetError(f"CIFAR-10 is not in the Keras cache ({datasets})")
    import keras

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout_s)
    try:
        root = keras.utils.get_file(fname=_CIFAR10_FNAME, origin=CIFAR10_ORIGIN, extract=True,
                                    file_hash=CIFAR10_SHA256, cache_dir=str(_keras_cache(
                                        cache_dir)))
    except Exception as error:  # no network, a proxy, a corrupt download
        reason = " ".join(str(error).split()) or type(error).__name__
        raise DatasetError(f"CIFAR-10 could not be downloaded ({reason[:160]})") from None
    finally:
        socket.setdefaulttimeout(previous)
    folder = Path(root) / "cifar-10-batches-py"
    if not _complete(folder):
        raise DatasetError(f"the CIFAR-10 archive did not contain the expected batches "
                           f"({folder})")
    return folder


def _read_batch(path: Path) -> tuple[Any, Any]:
    """One CIFAR-10 python batch: (uint8 N x 32 x 32 x 3, int32 N)."""
    import numpy as np

    try:
        from keras.src.datasets.cifar import load_batch  # keras's restricted unpickler
    except ImportError:  # a Keras that moved it: use the public loader's format directly
        import pickle

        def load_batch(fpath: str) -> tuple[Any, Any]:
            with open(fpath, "rb") as handle:
                raw = pickle.load(handle, encoding="bytes")
            return raw[b"data"].reshape(-1, 3, 32, 32), raw[b"labels"]

    data, labels = load_batch(str(path))
    images = np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), np.asarray(labels, dtype=np.int32)


def _read_cifar10(folder: Path, train_size: int | None, test_size: int | None
                  ) -> tuple[Any, Any, Any, Any]:
    """Read only the batches needed for ``train_size`` and ``test_size`` images."""
    import numpy as np

    train_size = 5 * _CIFAR10_BATCH if train_size is None else train_size
    test_size = _CIFAR10_BATCH if test_size is None else test_size
    xs, ys, have = [], [], 0
    for i in range(1, 6):
        if have >= train_size:
            break
        x, y = _read_batch(folder / f"data_batch_{i}")
        xs.append(x)
        ys.append(y)
        have += len(x)
    x_train = np.concatenate(xs)[:train_size] if xs else np.empty((0, 32, 32, 3), np.uint8)
    y_train = np.concatenate(ys)[:train_size] if ys else np.empty((0,), np.int32)
    x_test, y_test = _read_batch(folder / "test_batch")
    return x_train, y_train, x_test[:test_size].copy(), y_test[:test_size].copy()


# --------------------------------------------------------------------------------------------
# The one function
# --------------------------------------------------------------------------------------------

def load_dataset(name: str = "auto", *, train_size: int | None = None,
                 test_size: int | None = None, resolution: int = 32, num_classes: int = 10,
                 seed: int = 0, cache_dir: str | Path | None = None, download: bool = True,
                 announce: bool = True) -> ImageDataset:
    """Return training and test images and labels, and say which dataset they are.

    Args:
        name: ``"auto"``, ``"cifar10"`` or ``"generated"`` (see the module docstring).
        train_size, test_size: how many images to keep (default: all of CIFAR-10's 50,000 and
            10,000; for the generated dataset 5,000 and 1,000). CIFAR-10 keeps the first ones.
        resolution: side in pixels of the generated images (CIFAR-10 is always 32).
        num_classes: classes of the generated dataset (CIFAR-10 has 10).
        seed: the generated dataset's seed (training and test draw from seed and seed + 1).
        cache_dir: the Keras cache folder (default ``$KERAS_HOME`` or ``~/.keras``).
        download: allow downloading CIFAR-10 when it is not cached.
        announce: print the one-line story (also in the result's ``line``).

    Raises:
        DatasetError: an unknown name, sizes out of range, or ``"cifar10"`` asked for and not
            available.
    """
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; choose one of "
                           f"{', '.join(repr(d) for d in DATASETS)}.")
    for label, value in (("train_size", train_size), ("test_size", test_size)):
        if value is not None:
            whole_number(value, label, error=DatasetArgumentError)
    if train_size is not None and train_size > 5 * _CIFAR10_BATCH and name != "generated":
        raise DatasetError(f"train_size = {train_size:,} is more than CIFAR-10's 50,000 "
                           "training images.")
    if test_size is not None and test_size > _CIFAR10_BATCH and name != "generated":
        raise DatasetError(f"test_size = {test_size:,} is more than CIFAR-10's 10,000 test "
                           "images.")
    whole_number(resolution, "resolution", minimum=8, error=DatasetArgumentError)

    note = ""
    if name in ("auto", "cifar10"):
        try:
            folder = cifar10_folder(cache_dir, download=download)
        except DatasetError as error:
            if name == "cifar10":
                raise DatasetError(f"{error}. Connect to the internet, put the extracted "
                                   "cifar-10-batches-py folder in the Keras cache, or use "
                                   "'generated' or 'auto'.") from None
            note = f"{error}"
        else:
            x_train, y_train, x_test, y_test = _read_cifar10(folder, train_size, test_size)
            result = ImageDataset("cifar10", x_train, y_train, x_test, y_test, CIFAR10_CLASSES,
                                  asked=name, description="CIFAR-10 (real photographs)",
                                  extra={"folder": str(folder)})
            if announce:
                print(result.line)
            return result

    train_n = 5000 if train_size is None else train_size
    test_n = 1000 if test_size is None else test_size
    x_train, y_train = generate_images(train_n, resolution, num_classes, seed=seed)
    x_test, y_test = generate_images(test_n, resolution, num_classes, seed=seed + 1)
    result = ImageDataset("generated", x_train, y_train, x_test, y_test,
                          _orientation_names(num_classes), asked=name, note=note,
                          description="the course's generated stripes dataset",
                          extra={"seed": seed})
    if announce:
        print(result.line)
    return result


# --------------------------------------------------------------------------------------------
# tf.data
# --------------------------------------------------------------------------------------------

def make_pipeline(images: Any, labels: Any, *, image_size: int, batch_size: int,
                  training: bool = True, cache: bool = True, shuffle_buffer: int | None = None,
                  seed: int = 0, drop_remainder: bool | None = None) -> Any:
    """A ``tf.data`` pipeline: resize to ``image_size`` (the step where JPEG files would be
    decoded), cache the resized uint8 images in memory, shuffle (training only; reshuffled
    every epoch), batch, and prefetch so that the next batch is ready while the device works.

    Images stay uint8 (a quarter of float32's memory in the cache); the model rescales them.
    ``drop_remainder`` defaults to ``training``: every training step then sees a full batch,
    so images per second is batch size over step time. ``batch_size`` is the global batch
    (under a ``tf.distribute`` strategy it is split over the replicas).
    """
    import tensorflow as tf

    whole_number(batch_size, "batch_size", error=DatasetArgumentError)
    whole_number(image_size, "image_size", error=DatasetArgumentError)
    autotune = tf.data.AUTOTUNE
    drop = training if drop_remainder is None else drop_remainder
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    if images.shape[1] != image_size or images.shape[2] != image_size:
        def resize(image: Any, label: Any) -> tuple[Any, Any]:
            image = tf.image.resize(image, (image_size, image_size))
            return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8), label

        dataset = dataset.map(resize, num_parallel_calls=autotune, deterministic=True)
    if cache:
        dataset = dataset.cache()
    if training:
        dataset = dataset.shuffle(shuffle_buffer or len(images), seed=seed,
                                  reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=drop)
    return dataset.prefetch(autotune)


# --------------------------------------------------------------------------------------------
# Any Keras backend
# --------------------------------------------------------------------------------------------

def resize_images(images: Any, image_size: int, *, chunk: int = 256) -> Any:
    """``images`` (uint8, N x H x W x 3) resized to ``image_size`` pixels a side, as uint8,
    with ``keras.ops.image.resize`` (bilinear, like ``tf.image.resize``) a chunk at a time."""
    import numpy as np
    from keras import ops

    whole_number(image_size, "image_size", error=DatasetArgumentError)
    if images.shape[1] == image_size and images.shape[2] == image_size:
        return images
    out = np.empty((len(images), image_size, image_size, images.shape[-1]), dtype=np.uint8)
    for start in range(0, len(images), chunk):
        block = ops.image.resize(images[start:start + chunk].astype("float32"),
                                 (image_size, image_size))
        out[start:start + chunk] = np.clip(np.round(ops.convert_to_numpy(block)), 0, 255)
    return out


@functools.cache
def _array_batches_class() -> Any:
    import keras
    import numpy as np

    class ArrayBatches(keras.utils.PyDataset):
        """Batches from in-memory arrays for any Keras backend (see :func:`array_batches`).

        ``repeat=True`` makes it endless (pass ``steps_per_epoch`` to ``fit``), like
        ``tf.data``'s ``repeat()``.
        """

        def __init__(self, images: Any, labels: Any, batch_size: int, training: bool,
                     seed: int, repeat: bool = False) -> None:
            super().__init__()
            self.images, self.labels = images, np.asarray(labels, dtype=np.int32)
            self.batch_size, self.training, self.repeat = batch_size, training, repeat
            self.rng = np.random.default_rng(seed)
            self.order = np.arange(len(images))
            self.on_epoch_end()

        @property
        def num_batches(self) -> int | None:
            if self.repeat:
                return None
            whole, part = divmod(len(self.images), self.batch_size)
            return whole if self.training or not part else whole + 1

        def __len__(self) -> int:
            if self.num_batches is None:
                raise TypeError("an endless ArrayBatches has no length")
            return self.num_batches

        def __getitem__(self, index: int) -> tuple[Any, Any]:
            per_epoch = len(self.images) // self.batch_size if self.training else -(
                -len(self.images) // self.batch_size)
            index = index % max(1, per_epoch)
            if self.repeat and index == 0:
                self.on_epoch_end()  # an endless stream reshuffles at each pass
            chosen = self.order[index * self.batch_size:(index + 1) * self.batch_size]
            return self.images[chosen], self.labels[chosen]

        def on_epoch_end(self) -> None:
            if self.training:
                self.rng.shuffle(self.order)

        def repeated(self) -> "ArrayBatches":
            """The same batches, endlessly (``tf.data``'s ``repeat()``); shares the arrays."""
            return type(self)(self.images, self.labels, self.batch_size, self.training,
                              int(self.rng.integers(2**31)), repeat=True)

    return ArrayBatches


def array_batches(images: Any, labels: Any, *, image_size: int, batch_size: int,
                  training: bool = True, seed: int = 0, repeat: bool = False) -> Any:
    """The input pipeline for any Keras backend: a ``keras.utils.PyDataset``.

    The images are resized once to ``image_size`` and kept in memory as uint8 (the cache);
    training batches come in a new order every epoch, full batches only (so images per second
    is batch size over step time); test batches keep their order and the last one may be
    short. It does in NumPy what :func:`make_pipeline` does with ``tf.data``, without
    ``tf.data``'s parallel map and prefetch, so it runs where TensorFlow is absent (Keras on
    JAX). Pass ``shuffle=False`` to ``fit``: it shuffles itself.
    """
    whole_number(batch_size, "batch_size", error=DatasetArgumentError)
    if training and len(images) < batch_size:
        raise DatasetArgumentError("batch_size", batch_size,
                                   f"is more than the {len(images)} images given",
                                   "every training step needs a full batch")
    resized = resize_images(images, image_size)
    return _array_batches_class()(resized, labels, batch_size, training, seed, repeat)


def synthetic_batches(batch_size: int, image_size: int, num_classes: int, *,
                      seed: int = 0) -> Any:
    """"Synthetic data" as GPU benchmarks use the term: one random uint8 batch, built once and
    repeated forever, so a training step measures the model alone. Pass ``steps_per_epoch``
    to ``fit``.

    On Keras's TensorFlow backend it is a ``tf.data`` dataset (a ``tf.distribute`` strategy
    splits it over replicas); on any other backend an endless ``keras.utils.PyDataset``.
    """
    import keras
    import numpy as np

    whole_number(batch_size, "batch_size", error=DatasetArgumentError)
    whole_number(image_size, "image_size", error=DatasetArgumentError)
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (batch_size, image_size, image_size, 3), dtype=np.uint8)
    labels = rng.integers(0, num_classes, batch_size, dtype=np.int32)
    if keras.config.backend() != "tensorflow":
        return _array_batches_class()(images, labels, batch_size, False, seed, repeat=True)
    import tensorflow as tf

    return tf.data.Dataset.from_tensors((images, labels)).repeat()
