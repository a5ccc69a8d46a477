"""DataLoader tests.

Datasets live at module level and this module imports no Keras at import time: loader
workers unpickle the datasets, which imports this module in every worker process.
"""

import gc
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from kerascv_suite.data.augment import build_augmenter
from kerascv_suite.data.errors import BadImageError
from kerascv_suite.data.loader import DataLoader, collate
from kerascv_suite.data.skips import SkipReport

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HEAVY = ("tensorflow", "keras", "jax", "torch")


class ToyDataset:
    """Sample i: a 32x32 image, `i % 3` boxes of class `i % 5`, a mask, label i.

    Indices in `bad` raise ValueError, in `undecodable` BadImageError; `delay` sleeps a
    varying time per index so workers finish out of order.
    """

    def __init__(self, n, bad=(), undecodable=(), delay=0.0):
        self.n, self.bad, self.undecodable, self.delay = n, set(bad), set(undecodable), delay

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if self.delay:
            time.sleep(self.delay * ((i * 7) % 5))
        if i in self.bad:
            raise ValueError(f"bad sample {i}")
        if i in self.undecodable:
            raise BadImageError(f"{i}.jpg", "empty file")
        image = np.full((32, 32, 3), i % 256, np.uint8)
        image[4:20, 6:30] = 255 - i % 256
        mask = np.zeros((32, 32), np.uint8)
        mask[4:20, 6:30] = 1 + i % 5
        boxes = np.tile(np.array([[6, 4, 30, 20]], np.float32), (i % 3, 1))
        return {"image": image, "mask": mask, "boxes": boxes,
                "classes": np.full(i % 3, i % 5, np.int32), "label": i}


class MixedSizes(ToyDataset):
    """Odd samples are 16x16: such samples cannot be stacked into one batch."""

    def __getitem__(self, i):
        sample = super().__getitem__(i)
        if i % 2:
            sample["image"] = sample["image"][:16, :16]
        return sample


class Crashing(ToyDataset):
    """Sample 5 kills its process, as a segfault or the OOM killer would."""

    def __getitem__(self, i):
        if i == 5:
            os._exit(3)
        return super().__getitem__(i)


class ProbeAugment:
    """Augments, then records in the label whether a heavy framework is imported here."""

    def __init__(self):
        self.inner = build_augmenter("detection", image_size=32)

    def __call__(self, sample, seed):
        out = self.inner(sample, seed=seed)
        out["label"] = int(any(sys.modules.get(m) is not None for m in HEAVY))
        return out


def _alive(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return "\nState:\tZ" not in f.read()
    except FileNotFoundError:
        return False


def _wait_gone(pids, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if _alive(p)]


def test_collate_pads_boxes_with_class_minus_one():
    samples = [
        {"image": np.zeros((4, 4, 3), np.uint8), "boxes": [[0, 0, 2, 2], [1, 1, 3, 3]],
         "classes": [4, 2]},
        {"image": np.ones((4, 4, 3), np.uint8), "boxes": np.zeros((0, 4)), "classes": []},
        {"image": np.ones((4, 4, 3), np.uint8), "boxes": [[0, 0, 1, 1]] * 4,
         "classes": [1, 1, 1, 1]},
    ]
    batch, truncated = collate(samples, ("images", "boxes", "classes"), max_boxes=3)
    assert batch["images"].shape == (3, 4, 4, 3) and batch["images"].dtype == np.uint8
    np.testing.assert_array_equal(batch["classes"], [[4, 2, -1], [-1, -1, -1], [1, 1, 1]])
    assert batch["classes"].dtype == np.int32 and batch["boxes"].dtype == np.float32
    np.testing.assert_array_equal(batch["boxes"][0, 2], [0, 0, 0, 0])
    np.testing.assert_array_equal(batch["boxes"][1], np.zeros((3, 4)))
    assert truncated == 1


def _epochs(loader, epochs):
    return [[{k: v.copy() for k, v in b.items()} for b in loader] for _ in range(epochs)]


def test_workers_give_the_in_process_batches_in_order():
    dataset = ToyDataset(20, delay=0.002)
    kwargs = dict(batch_size=4, augment=build_augmenter("detection", image_size=24), seed=3,
                  keys=("images", "labels", "boxes", "classes", "masks"), max_boxes=4)
    with DataLoader(dataset, num_workers=2, **kwargs) as loader:
        parallel = _epochs(loader, 2)
    serial = _epochs(DataLoader(dataset, num_workers=0, **kwargs), 2)
    for epoch_p, epoch_s in zip(parallel, serial):
        assert len(epoch_p) == len(epoch_s) == 5
        for batch_p, batch_s in zip(epoch_p, epoch_s):
            for key in kwargs["keys"]:
                np.testing.assert_array_equal(batch_p[key], batch_s[key])
    labels = [np.concatenate([b["labels"] for b in epoch]) for epoch in parallel]
    assert sorted(labels[0]) == sorted(labels[1]) == list(range(20))
    assert not np.array_equal(labels[0], labels[1]), "each epoch reshuffles"
    again = DataLoader(dataset, num_workers=0, **kwargs)
    again.set_epoch(1)
    np.testing.assert_array_equal(next(iter(again))["images"], serial[1][0]["images"])


def test_bad_samples_are_skipped_and_counted():
    dataset = ToyDataset(12, bad={1, 6, 7}, undecodable={9})
    skips = SkipReport()
    with DataLoader(dataset, batch_size=2, shuffle=False, num_workers=2, drop_remainder=True,
                    keys=("images", "labels"), skips=skips, split="train") as loader:
        batches = list(loader) + list(loader)  # two epochs
    labels = [b["labels"].tolist() for b in batches[:5]]
    # Batch [6, 7] is all bad and is left out; the others lose their bad samples.
    assert labels == [[0], [2, 3], [4, 5], [8], [10, 11]]
    assert loader.stats() == {"samples": 16, "truncated_boxes": 0,
                              "skipped": {"ValueError": 6, "bad image: empty file": 2}}
    # The run's report counts each bad file once (not once per epoch), by split and reason,
    # with the file the undecodable image came from.
    assert skips.metrics() == {"skipped_train": 4, "skipped_train_valueerror": 3,
                               "skipped_train_bad_image_empty_file": 1}
    assert ("9.jpg", None, "bad image: empty file") in [
        (e.file, e.entry, e.reason) for e in skips.entries]


def test_overlapping_epochs_share_the_workers():
    # tf.data may start the next epoch's generator before finalizing the last one.
    kwargs = dict(batch_size=4, keys=("images", "labels"), seed=5)
    expected = [[b["labels"].tolist() for b in DataLoader(ToyDataset(16), num_workers=0,
                                                          **kwargs).iter_epoch(e)]
                for e in range(2)]
    with DataLoader(ToyDataset(16, delay=0.001), num_workers=2, **kwargs) as loader:
        first, second = iter(loader), iter(loader)
        got = [[], []]
        for _ in range(4):
            got[0].append(next(first)["labels"].tolist())
            got[1].append(next(second)["labels"].tolist())
        abandoned = iter(loader)
        next(abandoned)
        del abandoned  # ends its run while the workers keep serving the next one
        gc.collect()
        assert [b["labels"].tolist() for b in loader.iter_epoch(0)] == expected[0]
    assert got == expected


def test_a_collate_error_is_raised_not_skipped():
    with DataLoader(MixedSizes(8), batch_size=4, shuffle=False, num_workers=1,
                    keys=("images",)) as loader:
        with pytest.raises(RuntimeError, match="worker failed(.|\n)*ValueError"):
            list(loader)


def test_a_dead_worker_is_an_error_not_a_hang():
    with DataLoader(Crashing(16), batch_size=4, shuffle=False, num_workers=2,
                    keys=("images",)) as loader:
        with pytest.raises(RuntimeError, match="exited with code 3"):
            list(loader)


def test_workers_stop_when_the_consumer_raises():
    loader = DataLoader(ToyDataset(64), batch_size=4, num_workers=2, keys=("images", "labels"))
    with pytest.raises(RuntimeError, match="consumer"):
        with loader:
            for i, _ in enumerate(loader):
                pids = loader.worker_pids
                if i == 2:
                    raise RuntimeError("consumer failed")
    assert len(pids) == 2
    assert _wait_gone(pids, timeout=20) == []


def test_workers_stop_when_the_iterator_or_loader_is_dropped():
    loader = DataLoader(ToyDataset(64), batch_size=4, num_workers=2, keys=("images", "labels"),
                        persistent_workers=False)
    iterator = iter(loader)
    next(iterator)
    pids = loader.worker_pids
    del iterator
    gc.collect()
    assert _wait_gone(pids, timeout=20) == []

    loader = DataLoader(ToyDataset(64), batch_size=4, num_workers=1, keys=("images", "labels"))
    next(iter(loader))
    pids = loader.worker_pids
    del loader
    gc.collect()
    assert _wait_gone(pids, timeout=20) == []


_CHILD = """
import json, signal, sys
# A shell may start background jobs with SIGINT ignored; behave like an interactive run.
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.path.insert(0, {repo!r})
from kerascv_suite.data.loader import DataLoader
from tests.data.test_loader import ToyDataset
loader = DataLoader(ToyDataset(64, delay=0.005), batch_size=4, num_workers=2,
                    keys=("images", "labels"))
print(json.dumps(loader.start_workers()), flush=True)
while True:
    for batch in loader:
        pass
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_no_orphaned_workers_after_a_signal(signum):
    child = subprocess.Popen([sys.executable, "-c", _CHILD.format(repo=REPO)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pids = json.loads(child.stdout.readline())
        assert len(pids) == 2 and all(_alive(p) for p in pids)
        # A SIGINT sent within milliseconds of worker start-up is occasionally lost (about 1
        # run in 10 here; root cause not found yet, see the issue note), so signal again as a
        # user would press Ctrl-C again; what must hold is that no worker outlives the parent.
        for _ in range(12):
            child.send_signal(signum)
            try:
                child.wait(timeout=5)
                break
            except subprocess.TimeoutExpired:
                continue
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode != 0
    if signum == signal.SIGINT:
        assert "KeyboardInterrupt" in child.stderr.read()
    # After SIGTERM the parent cannot clean up; workers notice their parent is gone.
    assert _wait_gone(pids, timeout=30) == []


def test_workers_import_no_deep_learning_framework():
    # This process has Keras loaded (conftest); the workers must not.
    with DataLoader(ToyDataset(8), batch_size=4, augment=ProbeAugment(), num_workers=2,
                    keys=("images", "labels")) as loader:
        labels = np.concatenate([b["labels"] for b in loader])
    assert labels.tolist() == [0] * 8
    probe = subprocess.run(
        [sys.executable, "-c", "import sys, kerascv_suite.data.loader, kerascv_suite.data.augment;"
         f"print([m for m in {HEAVY + ('albumentations',)!r} if m in sys.modules])"],
        capture_output=True, text=True, check=True, cwd=REPO)
    assert probe.stdout.strip() == "[]"


def test_tf_dataset_passes_are_successive_epochs():
    loader = DataLoader(ToyDataset(10), batch_size=4, num_workers=0, seed=1,
                        keys=("images", "labels", "boxes", "classes"), max_boxes=3)
    ds = loader.as_tf_dataset()
    assert ds.element_spec["images"].shape.as_list() == [None, 32, 32, 3]
    assert ds.element_spec["classes"].shape.as_list() == [None, 3]
    for epoch in range(2):
        labels = np.concatenate([b["labels"].numpy() for b in ds])
        np.testing.assert_array_equal(labels, np.concatenate(loader.batch_indices(epoch)))


@pytest.mark.backend
def test_feeds_model_fit():
    import keras

    loader = DataLoader(ToyDataset(16), batch_size=4, seed=0, num_workers=2,
                        augment=build_augmenter("classification", image_size=32),
                        keys=("images", "labels"))
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(16, activation="softmax")(x))
    model.compile("sgd", "sparse_categorical_crossentropy")
    with loader:
        history = model.fit(loader.as_tf_dataset(x="images", y="labels"), epochs=1,
                            steps_per_epoch=2, shuffle=False, verbose=0)
    assert np.isfinite(history.history["loss"][0])


class GrayDataset:
    """Sample i: a 36x36 grayscale (one-channel) image of value i, label i."""

    def __len__(self):
        return 6

    def __getitem__(self, i):
        return {"image": np.full((36, 36, 1), i, np.uint8), "label": i}


def test_tf_dataset_takes_the_channel_count_from_the_data():
    aug = build_augmenter("classification_eval", image_size=32)
    loader = DataLoader(GrayDataset(), batch_size=4, augment=aug, num_workers=0, shuffle=False)
    assert loader.element_spec()["images"] == ((None, 32, 32, 1), np.uint8)
    images = [b.numpy() for b, _ in loader.as_tf_dataset(x="images", y="labels")]
    assert [b.shape for b in images] == [(4, 32, 32, 1), (2, 32, 32, 1)]
    np.testing.assert_array_equal(images[1][:, 0, 0, 0], [4, 5])
    # Given explicitly, the channel count needs no sample read.
    given = DataLoader(ToyDataset(4), batch_size=2, augment=aug, channels=1, num_workers=0)
    assert given.element_spec()["images"][0] == (None, 32, 32, 1)


def _refuse_to_unpickle():
    raise TypeError("this dataset cannot be rebuilt")


class Unpicklable(ToyDataset):
    """Pickles, but unpickling raises, as SkipLog (held by every Dataset) once did."""

    def __reduce__(self):
        return _refuse_to_unpickle, ()


def test_digits_through_workers_match_in_process_batches():
    # Regression: every Dataset holds a SkipLog (a Counter subclass) that failed to unpickle
    # in the workers (TypeError), reported as "Loader worker ... exited with code 0".
    from kerascv_suite.data import load_digits

    kwargs = dict(batch_size=64, seed=0, augment=build_augmenter(
        "classification", image_size=(32, 32), hflip=0.0, color_jitter=None, fancy_pca=None,
        scale=(0.85, 1.0), ratio=(0.9, 1.1)))
    dataset = load_digits("val")
    with DataLoader(dataset, num_workers=2, **kwargs) as loader:
        parallel = _epochs(loader, 2)
    serial = _epochs(DataLoader(dataset, num_workers=0, **kwargs), 2)
    assert [len(e) for e in parallel] == [5, 5]  # ceil(270 / 64)
    for epoch_p, epoch_s in zip(parallel, serial):
        for batch_p, batch_s in zip(epoch_p, epoch_s):
            assert batch_p["images"].shape[1:] == (32, 32, 1)
            np.testing.assert_array_equal(batch_p["images"], batch_s["images"])
            np.testing.assert_array_equal(batch_p["labels"], batch_s["labels"])


def test_a_worker_that_cannot_start_reports_why():
    with DataLoader(Unpicklable(8), batch_size=4, num_workers=2) as loader:
        with pytest.raises(RuntimeError, match="could not start(.|\n)*cannot be rebuilt"):
            next(iter(loader))
