"""utils.datasets: the real CIFAR-10 path on small files in CIFAR-10's own format, the offline
fallback, the generated dataset and the tf.data pipeline. No test touches the network: the
download function is replaced by one that fails as an offline machine does."""

from __future__ import annotations

import pickle
import tarfile
import textwrap
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from utils.datasets import (
    CIFAR10_CLASSES,
    DatasetArgumentError,
    DatasetError,
    array_batches,
    generate_images,
    load_dataset,
    make_pipeline,
    synthetic_batches,
)

PER_BATCH = 10  # images per batch file in the small archive (the real one has 10,000)


def cifar_batch(index: int, count: int = PER_BATCH) -> dict:
    """A CIFAR-10 python batch: rows of 3072 bytes (1024 red, 1024 green, 1024 blue, each
    row-major 32x32), labels as a list, the keys as bytes, as in the published archive."""
    rng = np.random.default_rng(index)
    return {b"batch_label": f"batch {index}".encode(),
            b"labels": [int(v) for v in rng.integers(0, 10, count)],
            b"data": rng.integers(0, 256, (count, 3072), dtype=np.uint8),
            b"filenames": [f"img_{index}_{i}.png".encode() for i in range(count)]}


def write_cifar_folder(folder: Path) -> dict[str, dict]:
    folder.mkdir(parents=True)
    batches = {}
    for name, seed in [(f"data_batch_{i}", i) for i in range(1, 6)] + [("test_batch", 99)]:
        batches[name] = cifar_batch(seed)
        with open(folder / name, "wb") as handle:
            # the published batches are Python 2 pickles; protocol 4 stores the same objects
            # (bytes keys, a uint8 array, a list of labels) in a form Python 3 writes directly
            pickle.dump(batches[name], handle, protocol=4)
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [
        c.encode() for c in CIFAR10_CLASSES]}))
    return batches


@pytest.fixture
def offline(monkeypatch):
    """Downloads fail the way they do without a network (DNS failure)."""
    import keras.src.utils.file_utils as file_utils

    calls = []

    def no_network(url, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError(OSError(-2, "Name or service not known"))

    monkeypatch.setattr(file_utils, "urlretrieve", no_network)
    return calls


def expected_image(batch: dict, row: int) -> np.ndarray:
    return batch[b"data"][row].reshape(3, 32, 32).transpose(1, 2, 0)


def test_real_cifar10_from_the_keras_cache(tmp_path, monkeypatch, offline, capsys):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    folder = tmp_path / "keras" / "datasets" / "cifar-10-batches-py-target" / "cifar-10-batches-py"
    batches = write_cifar_folder(folder)
    data = load_dataset("auto", train_size=25, test_size=4)
    assert data.name == "cifar10" and data.class_names == CIFAR10_CLASSES
    assert data.x_train.shape == (25, 32, 32, 3) and data.x_train.dtype == np.uint8
    assert data.y_train.dtype == np.int32 and data.x_test.shape == (4, 32, 32, 3)
    # the 25 images are batch 1, batch 2 and half of batch 3, in order, pixels in HWC order
    np.testing.assert_array_equal(data.x_train[0], expected_image(batches["data_batch_1"], 0))
    np.testing.assert_array_equal(data.x_train[13], expected_image(batches["data_batch_2"], 3))
    np.testing.assert_array_equal(data.x_test[3], expected_image(batches["test_batch"], 3))
    assert list(data.y_train[20:25]) == batches["data_batch_3"][b"labels"][:5]
    assert not offline, "a cached dataset must not be downloaded"
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "using CIFAR-10 (real photographs)" in out


def test_real_cifar10_from_the_archive_keras_downloads(tmp_path, monkeypatch, offline):
    """The archive as get_file stores it before extracting (its hash check is the only thing
    replaced: this small archive is not the 170 MB original)."""
    import keras.src.utils.file_utils as file_utils

    source = tmp_path / "src" / "cifar-10-batches-py"
    batches = write_cifar_folder(source)
    datasets = tmp_path / "keras" / "datasets"
    datasets.mkdir(parents=True)
    with tarfile.open(datasets / "cifar-10-batches-py-target_archive", "w:gz") as archive:
        archive.add(source, arcname="cifar-10-batches-py")
    monkeypatch.setattr(file_utils, "validate_file", lambda *a, **k: True)
    data = load_dataset("cifar10", train_size=5, test_size=2, cache_dir=tmp_path / "keras",
                        announce=False)
    assert data.name == "cifar10" and not offline
    np.testing.assert_array_equal(data.x_train[4], expected_image(batches["data_batch_1"], 4))


def test_offline_falls_back_to_the_generated_dataset_in_one_line(tmp_path, offline, capsys):
    data = load_dataset("auto", train_size=30, test_size=10, cache_dir=tmp_path)
    out = capsys.readouterr().out.strip().splitlines()
    assert offline, "auto must try the real dataset first"
    assert data.name == "generated" and data.x_train.shape == (30, 32, 32, 3)
    story = [line for line in out if line.startswith("Asked for")]
    assert len(story) == 1
    assert "CIFAR-10 could not be downloaded" in story[0]
    assert "Name or service not known" in story[0]
    assert "using the course's generated stripes dataset" in story[0]


def test_cifar10_asked_for_and_unreachable_is_refused(tmp_path, offline):
    with pytest.raises(DatasetError, match="could not be downloaded.*'generated' or 'auto'"):
        load_dataset("cifar10", cache_dir=tmp_path, announce=False)
    with pytest.raises(DatasetError, match="not in the Keras cache"):
        load_dataset("cifar10", cache_dir=tmp_path, download=False, announce=False)


def test_bad_arguments_are_refused_clearly():
    with pytest.raises(DatasetError, match="unknown dataset 'imagenet'.*'generated'"):
        load_dataset("imagenet")
    with pytest.raises(DatasetError, match="train_size = -5 must be a whole number >= 1"):
        load_dataset("generated", train_size=-5)
    with pytest.raises(DatasetArgumentError, match="resolution = 4 must be a whole number >= 8"):
        load_dataset("generated", resolution=4)
    with pytest.raises(DatasetArgumentError, match="num_classes = 1 must be a whole number >= 2"):
        generate_images(3, 8, 1)
    with pytest.raises(DatasetArgumentError, match="batch_size = 0"):
        make_pipeline(np.zeros((2, 8, 8, 3), np.uint8), np.zeros(2), image_size=8, batch_size=0)
    with pytest.raises(DatasetError, match="more than CIFAR-10's 10,000 test"):
        load_dataset("cifar10", test_size=20_000)


def test_generated_images_are_deterministic_and_balanced():
    a_x, a_y = generate_images(200, 24, 10, seed=3)
    b_x, b_y = generate_images(200, 24, 10, seed=3)
    c_x, _ = generate_images(200, 24, 10, seed=4)
    np.testing.assert_array_equal(a_x, b_x)
    np.testing.assert_array_equal(a_y, b_y)
    assert not np.array_equal(a_x, c_x)
    assert a_x.shape == (200, 24, 24, 3) and a_x.dtype == np.uint8 and a_y.dtype == np.int32
    assert np.bincount(a_y).tolist() == [20] * 10
    big, _ = generate_images(3, 227, 4, seed=0)
    assert big.shape == (3, 227, 227, 3) and big.std() > 20


def stripe_orientation(image: np.ndarray) -> float:
    """Orientation (radians in [0, pi)) of the strongest gradient: the structure tensor."""
    gray = image.astype(np.float64).mean(axis=-1)
    gy, gx = np.gradient(gray)
    jxx, jyy, jxy = (gx * gx).sum(), (gy * gy).sum(), (gx * gy).sum()
    return (0.5 * np.arctan2(2 * jxy, jxx - jyy)) % np.pi


@pytest.mark.parametrize("classes", [4, 10])
def test_generated_classes_are_learnable_from_the_stripes(classes):
    """The label is in the image: a classical orientation estimate recovers it."""
    images, labels = generate_images(300, 32, classes, seed=1)
    band = np.pi / classes
    predicted = np.array([int(stripe_orientation(img) // band) % classes for img in images])
    assert (predicted == labels).mean() > 0.9


def test_generated_dataset_through_load_dataset():
    data = load_dataset("generated", train_size=40, test_size=20, resolution=48,
                        num_classes=5, seed=7, announce=False)
    assert data.name == "generated" and data.num_classes == 5 and data.image_size == 48
    assert "Asked for 'generated'; using the course's generated" in data.line
    again = load_dataset("generated", train_size=40, test_size=20, resolution=48,
                         num_classes=5, seed=7, announce=False)
    np.testing.assert_array_equal(data.x_test, again.x_test)
    assert not np.array_equal(data.x_train[:20], data.x_test)


def test_pipeline_resizes_caches_shuffles_batches():
    images, labels = generate_images(50, 32, 10, seed=0)
    train = make_pipeline(images, labels, image_size=67, batch_size=16, seed=1)
    batches = list(train)
    assert len(batches) == 3  # 50 // 16: the partial batch is dropped when training
    x, y = batches[0]
    assert tuple(x.shape) == (16, 67, 67, 3) and x.dtype.name == "uint8"

    def images_of(epoch):  # one pixel per image identifies it
        return np.concatenate([b[0].numpy()[:, 33, 33, 0] for b in epoch])

    first, second = images_of(train), images_of(train)
    assert not np.array_equal(first, second), "reshuffled every epoch"
    unshuffled = images_of(make_pipeline(images, labels, image_size=67, batch_size=16,
                                         training=False))
    assert not np.array_equal(first, unshuffled[:48]), "training order is shuffled"
    test = make_pipeline(images, labels, image_size=32, batch_size=16, training=False)
    order = np.concatenate([b[1].numpy() for b in test])
    np.testing.assert_array_equal(order, labels)  # evaluation: every image, in order
    np.testing.assert_array_equal(next(iter(test))[0].numpy(), images[:16])  # no resize


def test_array_batches_resize_shuffle_and_batch_like_the_pipeline():
    images, labels = generate_images(50, 32, 10, seed=0)
    train = array_batches(images, labels, image_size=67, batch_size=16, seed=1)
    assert len(train) == 3  # 50 // 16: the partial batch is dropped when training
    x, y = train[0]
    assert x.shape == (16, 67, 67, 3) and x.dtype == np.uint8 and y.dtype == np.int32

    def epoch(dataset):  # one pixel per image identifies it
        pixels = np.concatenate([dataset[i][0][:, 33, 33, 0] for i in range(len(dataset))])
        dataset.on_epoch_end()
        return pixels

    first, second = epoch(train), epoch(train)
    assert not np.array_equal(first, second), "reshuffled every epoch"
    resized = make_pipeline(images, labels, image_size=67, batch_size=50, training=False)
    reference = next(iter(resized))[0].numpy()  # tf.image.resize, bilinear
    ours = array_batches(images, labels, image_size=67, batch_size=50, training=False)[0][0]
    assert np.abs(ours.astype(int) - reference.astype(int)).max() <= 1
    test = array_batches(images, labels, image_size=32, batch_size=16, training=False)
    assert len(test) == 4  # every image: the last batch is short
    np.testing.assert_array_equal(np.concatenate([test[i][1] for i in range(4)]), labels)
    np.testing.assert_array_equal(test[0][0], images[:16])  # no resize, kept in order
    endless = train.repeated()
    assert endless.num_batches is None and endless[7][0].shape == (16, 67, 67, 3)
    with pytest.raises(DatasetArgumentError, match="batch_size = 64 is more than the 50"):
        array_batches(images, labels, image_size=67, batch_size=64)


# A kernel without TensorFlow, as on Colab's TPU runtime: the import system finds none. (Putting
# None in sys.modules["tensorflow"] is not the same: Keras's preprocessing layers then believe
# TensorFlow is loaded and fail to import it.)
HIDE_TENSORFLOW = """
import sys
class Hidden:
    def __init__(self, finder):
        self.finder = finder
    def find_spec(self, name, path=None, target=None):
        return None if name.split(".")[0] == "tensorflow" else self.finder.find_spec(name, path, target)
    def __getattr__(self, attr):
        return getattr(self.finder, attr)
sys.meta_path[:] = [Hidden(f) if getattr(f, "__name__", "") == "PathFinder" else f
                    for f in sys.meta_path]
"""


def test_keras_on_jax_trains_from_array_batches_and_synthetic_batches():
    from conftest import run_python

    result = run_python(HIDE_TENSORFLOW + textwrap.dedent("""
        import keras
        from utils.datasets import array_batches, generate_images, synthetic_batches
        from utils.models import build_alexnet
        images, labels = generate_images(64, 32, 10)
        model = build_alexnet(67, 10, 0.125)
        model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        history = model.fit(array_batches(images, labels, image_size=67, batch_size=16),
                            epochs=1, verbose=0, shuffle=False)
        synthetic = synthetic_batches(16, 67, 10)
        model.fit(synthetic, steps_per_epoch=2, epochs=1, verbose=0)
        print(keras.config.backend(), type(synthetic).__name__, len(history.history["loss"]),
              "tensorflow" in sys.modules)
    """), env={"KERAS_BACKEND": "jax"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-4:] == ["jax", "ArrayBatches", "1", "False"]


def test_synthetic_batches_repeat_one_batch():
    data = synthetic_batches(8, 67, 10).take(3)
    batches = [x.numpy() for x, _ in data]
    assert batches[0].shape == (8, 67, 67, 3) and batches[0].dtype == np.uint8
    np.testing.assert_array_equal(batches[0], batches[2])


def test_class_names_say_which_way_the_stripes_run():
    """A name gives the stripes' direction as imshow shows them (row 0 on top), in degrees
    counter-clockwise from horizontal: the gradient's direction turned by 90 degrees."""
    data = load_dataset("generated", train_size=100, test_size=1, num_classes=10, announce=False)
    for image, label in zip(data.x_train, data.y_train):
        named = float(data.class_names[label].split()[-1].rstrip("°"))
        seen = (90 - np.degrees(stripe_orientation(image))) % 180
        gap = abs(named - seen) % 180
        assert min(gap, 180 - gap) < 9 + 3, (data.class_names[label], seen)
