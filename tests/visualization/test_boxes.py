import numpy as np
import pytest

from kerascv_suite.visualization import class_colour, draw_detections, sample_grid


def test_class_colours_are_fixed_and_distinct():
    colours = [class_colour(c) for c in range(5)]
    assert len(set(colours)) == 5
    assert class_colour(3) == colours[3]
    assert all(len(c) == 3 and all(0 <= v <= 255 for v in c) for c in colours)


def test_draw_detections_draws_kept_boxes_only():
    image = np.zeros((40, 40, 3), np.uint8)
    boxes = np.array([[20, 20, 35, 35], [2, 30, 8, 38], [2, 2, 10, 10]], np.float32)
    out = draw_detections(image, boxes, [0.9, 0.1, 0.9], [1, 0, -1], ["a", "b"], scale=1,
                          gt_boxes=np.array([[1, 1, 5, 5]]))
    assert out.shape == (40, 40, 3)
    np.testing.assert_array_equal(out[35, 27], class_colour(1))  # bottom edge of box 0
    np.testing.assert_array_equal(out[3, 1], [255, 255, 255])  # ground truth, white
    assert not out[32:37, 3:7].any()  # score 0.1 < 0.25: not drawn
    assert not out[9, 6:10].any()  # class -1 (padding): not drawn
    big = draw_detections(image[:64 // 4, :64 // 4], boxes[:0], [], [], ["a"])
    assert big.shape == (256, 256, 3)  # small images are enlarged


def test_sample_grid_layout():
    panels = [np.full((2, 3, 3), i, np.uint8) for i in range(5)]
    grid = sample_grid(panels, columns=2, gap=1)
    assert grid.shape == (3 * 2 + 2, 2 * 3 + 1, 3)
    assert grid[0, 0, 0] == 0 and grid[0, 4, 0] == 1 and grid[6, 0, 0] == 4
    assert grid[2, 0, 0] == 255 and grid[6, 4, 0] == 255  # gap and the empty cell
    with pytest.raises(ValueError, match="Received"):
        sample_grid([])
