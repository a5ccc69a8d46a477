"""`folder_io`: the tf.data decode stream shared by `kcv segment` and `kcv detect`."""

import threading
import time

import numpy as np

from kerascv_suite.data import write_image
from kerascv_suite.pipelines.folder_io import BatchStream, make_dataset, predict_and_write


def test_batch_stream_keeps_file_order_across_uneven_files():
    counts = [2, 0, 3, 1, 0, 4]  # model inputs per file (0: unreadable, 3-4: tiles)

    def load(index):
        time.sleep(0.02 * ((index * 7) % 3))  # the threads finish out of order
        ids = 10 * index + np.arange(counts[index], dtype=np.int64)
        return np.full((counts[index], 2, 2), index, np.uint8), ids

    batches = list(BatchStream(len(counts), load, batch_size=4, sample_shape=(2, 2), threads=3,
                               lookahead=6))
    assert [len(ids) for _, ids in batches] == [4, 4, 2]
    ids = np.concatenate([ids for _, ids in batches])
    np.testing.assert_array_equal(ids, [0, 1, 20, 21, 22, 30, 50, 51, 52, 53])
    inputs = np.concatenate([inputs for inputs, _ in batches])
    np.testing.assert_array_equal(inputs[:, 0, 0], ids // 10)
    assert len(list(BatchStream(len(counts), load, 4, (2, 2), threads=2))) == 3  # again


def test_batch_stream_reads_ahead_a_bounded_window_and_stops_early():
    started, lock = [], threading.Lock()

    def load(index):
        with lock:
            started.append(index)
        return np.zeros((1, 1), np.uint8), np.asarray([index], np.int64)

    stream = iter(BatchStream(1000, load, batch_size=2, sample_shape=(1,), threads=2,
                              lookahead=4))
    next(stream)
    time.sleep(0.2)
    # Two files consumed; beyond them at most 2 * threads groups of one file in the map,
    # the batch being assembled and the prefetched one (a few more, never the 1000).
    assert len(started) <= 2 + 4 + 2 + 2 + 2
    stream.close()  # a consumer that stops (a writer failed) cancels the lookahead
    count = len(started)
    time.sleep(0.1)
    assert len(started) == count < 10


def test_make_dataset_records_unreadable_files(tmp_path):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (20 + i, 30, 3), dtype=np.uint8) for i in range(3)]
    paths = []
    for i, image in enumerate(images):
        paths.append(tmp_path / f"{i}.png")
        write_image(paths[-1], image)
    (tmp_path / "bad.png").write_bytes(b"not a png")
    paths.insert(1, tmp_path / "bad.png")
    originals, failures = {}, {}
    stream = make_dataset([str(p) for p in paths], (8, 8), 1, 2, originals, failures)
    written = {}
    count = predict_and_write(stream, 2, lambda batch: batch.mean(axis=(1, 2, 3)),
                              written.__setitem__)
    assert count == 3 and sorted(written) == [0, 2, 3] and list(failures) == [1]
    assert [originals[i].shape[0] for i in (0, 2, 3)] == [20, 21, 22]
