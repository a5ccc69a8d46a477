"""`batches` and `log_skipped`, the loop helpers the evaluation pipelines share."""

from kerascv_suite.data.dataset import batches, log_skipped
from kerascv_suite.data.errors import SkipLog


def test_batches_keeps_order_and_yields_a_short_last_batch():
    assert list(batches(range(5), 2)) == [[0, 1], [2, 3], [4]]
    assert list(batches(range(4), 2)) == [[0, 1], [2, 3]]
    assert list(batches([], 3)) == []


def test_log_skipped_reports_only_when_entries_were_skipped():
    class Data:
        skipped = SkipLog()

    lines = []
    log_skipped(Data(), lines.append)
    log_skipped(object(), lines.append)
    assert lines == []
    Data.skipped.add("a.jpg", "image", "not an image")
    log_skipped(Data(), lines.append)
    assert lines[0].startswith("Skipped or repaired 1 entries (test 1)")
    assert any("test" in line and "a.jpg [image]: not an image" in line for line in lines)
