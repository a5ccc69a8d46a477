"""Anchor properties against the Faster R-CNN and SSD papers."""

import math

import numpy as np
import pytest
from keras import ops

from kerascv_suite.bounding_box import SSD300, SSD512, rpn_anchors, ssd_default_boxes, ssd_scales
from kerascv_suite.bounding_box.anchors import boxes_per_location

pytestmark = pytest.mark.backend


def _wh(boxes):
    boxes = ops.convert_to_numpy(boxes).astype(np.float64)
    return boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1], (boxes[:, :2] + boxes[:, 2:]) / 2


def test_rpn_nine_anchors_areas_ratios_and_centres():
    anchors = rpn_anchors((3, 4), stride=16)
    # Ren et al. 2015 sec. 3.1.1: k = 9 anchors (3 scales x 3 ratios) per location.
    assert tuple(anchors.shape) == (3 * 4 * 9, 4)
    w, h, centres = _wh(anchors)
    # Areas 128^2, 256^2, 512^2 and ratios 1:2, 1:1, 2:1 at every location (paper sec 3.1.1).
    areas = (w * h).reshape(12, 9)
    ratios = (h / w).reshape(12, 9)
    expected_areas = np.array([128.0 ** 2, 256.0 ** 2, 512.0 ** 2] * 3)
    expected_ratios = np.repeat([0.5, 1.0, 2.0], 3)
    np.testing.assert_allclose(areas, np.broadcast_to(expected_areas, (12, 9)), rtol=1e-5)
    np.testing.assert_allclose(ratios, np.broadcast_to(expected_ratios, (12, 9)), rtol=1e-5)
    # Centres of cell (row, col) at ((col + .5) * 16, (row + .5) * 16): the 9 share a centre.
    rows, cols = np.meshgrid(np.arange(3), np.arange(4), indexing="ij")
    expected_centres = np.stack([(cols + 0.5) * 16, (rows + 0.5) * 16], -1).reshape(12, 1, 2)
    np.testing.assert_allclose(centres.reshape(12, 9, 2), np.broadcast_to(expected_centres,
                                                                          (12, 9, 2)), atol=1e-3)


def test_rpn_anchor_count_for_a_1000x600_image():
    # Paper sec 3.1.4: "For a typical 1000 x 600 image, there will be roughly 20000
    # (~60 x 40 x 9) anchors in total": conv5_3 of VGG16 is ceil(600/16) x ceil(1000/16).
    anchors = rpn_anchors((math.ceil(600 / 16), math.ceil(1000 / 16)))
    assert anchors.shape[0] == 38 * 63 * 9 == 21546


def test_ssd300_and_ssd512_box_counts():
    # Liu et al. 2016, Table/sec 3.1 and Fig. 2: SSD300 has 8732 default boxes; SSD512 has
    # 24564 (64^2*4 + 32^2*6 + 16^2*6 + 8^2*6 + 4^2*6 + 2^2*4 + 1*4 = 24564).
    assert boxes_per_location(SSD300["aspect_ratios"]) == (4, 6, 6, 6, 4, 4)
    assert boxes_per_location(SSD512["aspect_ratios"]) == (4, 6, 6, 6, 6, 4, 4)
    assert ssd_default_boxes(**SSD300).shape[0] == 8732
    assert ssd_default_boxes(**SSD512).shape[0] == 24564


def test_ssd_box_shapes_and_centres_on_one_map():
    # One 3x3 map of a 300 image, step 100, s_k = 0.71 (213 px), s_k+1 = 0.88 (264 px) and
    # ratios {1, 2, 1/2, 3, 1/3} plus the extra s'_k = sqrt(s_k s_k+1) box (paper sec 2.2).
    boxes = ssd_default_boxes(300, (3,), (100,), (213.0,), (264.0,), ((2, 3),))
    w, h, centres = _wh(boxes)
    assert len(w) == 3 * 3 * 6
    w, h, centres = w.reshape(9, 6), h.reshape(9, 6), centres.reshape(9, 6, 2)
    expected_w = [213, math.sqrt(213 * 264), 213 * math.sqrt(2), 213 / math.sqrt(2),
                  213 * math.sqrt(3), 213 / math.sqrt(3)]
    np.testing.assert_allclose(w, np.broadcast_to(expected_w, (9, 6)), rtol=1e-5)
    np.testing.assert_allclose(h / w, np.broadcast_to([1, 1, .5, 2, 1 / 3, 3], (9, 6)),
                               rtol=1e-5)
    # Centres ((j + .5) * step, (i + .5) * step): 50, 150, 250.
    np.testing.assert_allclose(centres[:, 0], [[x, y] for y in (50, 150, 250)
                                               for x in (50, 150, 250)], atol=1e-3)


def test_ssd_scales_follow_equation_4():
    # Eq. 4 with s_min .2, s_max .9, m = 6: .2, .34, .48, .62, .76, .9 (step .7/5 = .14),
    # then s_7 = 1.04 for the last map's extra box.
    np.testing.assert_allclose(ssd_scales(6), [.2, .34, .48, .62, .76, .9, 1.04])
    # With conv4_3 at 0.1 (reference implementation): eq. 4 spans the other 5 maps.
    np.testing.assert_allclose(ssd_scales(6, first=0.1),
                               [.1, .2, .375, .55, .725, .9, 1.075])
