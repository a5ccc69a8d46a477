"""A correction to tf2onnx 1.17's conversion of integer `FloorDiv`.

tf2onnx converts `FloorDiv` (TensorFlow's, and TFLite's `FLOOR_DIV` through its TFLite
frontend) of integers to ONNX `Div`, which truncates toward zero: `-3 // 4` becomes 0
instead of -1. RoI pooling's bin edges take ceilings as `-((-a) // b)`
(`layers.roi_pooling`), so the R-CNN family's ONNX files pooled other bins than Keras and
scored some detections differently (0.358 instead of 0.361 on faster_rcnn_small).
`install_floor_div_fix` registers a handler that converts integer `FloorDiv` exactly:
`q = Div(x, y)`, minus 1 where the remainder is non-zero and its sign differs from `y`'s;
floats keep tf2onnx's `Floor(Div(x, y))`.
"""

from __future__ import annotations

import numpy as np

_INSTALLED = []


def install_floor_div_fix():
    """Registers the exact integer `FloorDiv` handler with tf2onnx (once per process)."""
    if _INSTALLED:
        return
    import tf2onnx.onnx_opset  # noqa: F401  (tf2onnx's handlers first: ours replaces one)
    from onnx import TensorProto, helper
    from tf2onnx import utils
    from tf2onnx.handler import tf_op

    floats = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE)

    @tf_op("FloorDiv")
    class FloorDiv:  # noqa: F841  (registered by the decorator)
        @classmethod
        def version_6(cls, ctx, node, **kwargs):
            dtype = ctx.get_dtype(node.input[0])
            if dtype in floats:
                node.type = "Div"
                floor = ctx.insert_new_node_on_output(
                    op_type="Floor", output_name=node.output[0],
                    name=utils.make_name("floor_div_res"))
                ctx.copy_dtype(node.output[0], floor.output[0])
                ctx.copy_shape(node.output[0], floor.output[0])
                return
            x, y = node.input
            output, shape = node.output[0], ctx.get_shape(node.output[0])
            ctx.remove_node(node.name)
            zero = ctx.make_const(utils.make_name("floor_div_zero"),
                                  np.zeros((), helper.tensor_dtype_to_np_dtype(dtype)))
            quotient = ctx.make_node("Div", [x, y]).output[0]
            product = ctx.make_node("Mul", [quotient, y]).output[0]
            remainder = ctx.make_node("Sub", [x, product]).output[0]
            inexact = ctx.make_node("Not", [ctx.make_node(
                "Equal", [remainder, zero.output[0]]).output[0]]).output[0]
            signs = ctx.make_node("Xor", [
                ctx.make_node("Less", [remainder, zero.output[0]]).output[0],
                ctx.make_node("Less", [y, zero.output[0]]).output[0]]).output[0]
            adjust = ctx.make_node("Cast", [ctx.make_node(
                "And", [inexact, signs]).output[0]], attr={"to": dtype}).output[0]
            ctx.make_node("Sub", [quotient, adjust], outputs=[output], shapes=[shape],
                          dtypes=[dtype])

    _INSTALLED.append(FloorDiv)
