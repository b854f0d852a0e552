"""The reader's network, and what it is trained to answer (Keras; training only).

A small fully convolutional one-stage detector in the manner of CenterNet (Zhou et al. 2019,
"Objects as Points"): every STRIDE x STRIDE cell of the page says how likely a digit's or a
mark's centre lies in it (`heat`), which of CLASSES it would be (`classes`, softmax), where in
the cell the centre is and how large the box round it (`offset`, `size`). Its backbone halves
the page four times (to 1/16, where a cell sees a whole digit and its neighbours) and a small
feature pyramid brings that back to 1/4. The page comes in as raw pixels (0-255, ink bright,
as `paper.even` makes it): the scaling is a layer of the model, so its ONNX export reads
without this package.
"""

import keras
import numpy as np
from keras import layers, ops

from mnist_cnn.reading.detector import CLASSES, STRIDE

OUTPUTS = 1 + len(CLASSES) + 4  # heat, class logits, offset (x, y), log size (w, h)
TARGETS = 8  # heat, class, class weight, centre, offset (x, y), log size (w, h)
WIDTHS = (16, 32, 80, 160)  # channels at 1/2, 1/4, 1/8, 1/16
HEAD = 64  # channels of the heads' shared layer


def build(widths: tuple[int, ...] = WIDTHS) -> keras.Model:
    """The network: (N, H, W, 1) raw pixels in, H and W multiples of 16; (N, H/4, W/4, OUTPUTS)
    out: the heat as a probability, the rest as raw numbers (`detector.decode` reads them)."""

    def conv(x, filters: int, strides: int = 1):
        x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)(x)
        return layers.ReLU()(layers.BatchNormalization()(x))

    page = keras.Input((None, None, 1), name="page")
    x = layers.Rescaling(1 / 255)(page)
    x = conv(x, widths[0], 2)
    c4 = conv(conv(x, widths[1], 2), widths[1])
    c8 = conv(conv(conv(c4, widths[2], 2), widths[2]), widths[2])
    c16 = conv(conv(conv(c8, widths[3], 2), widths[3]), widths[3])
    up = layers.UpSampling2D()(layers.Conv2D(widths[2], 1)(c16))
    p8 = conv(layers.Add()([up, layers.Conv2D(widths[2], 1)(c8)]), widths[2])
    up = layers.UpSampling2D()(layers.Conv2D(widths[1], 1)(p8))
    p4 = conv(layers.Add()([up, layers.Conv2D(widths[1], 1)(c4)]), HEAD)
    # the heads answer in float32 whatever the network computes in (mixed bfloat16 training)
    heat = layers.Conv2D(
        1,
        1,
        activation="sigmoid",
        bias_initializer=keras.initializers.Constant(-4.0),
        dtype="float32",
    )(p4)
    classes = layers.Conv2D(len(CLASSES), 1, dtype="float32")(p4)
    geometry = layers.Conv2D(4, 1, dtype="float32")(p4)
    out = layers.Concatenate(name="cells", dtype="float32")([heat, classes, geometry])
    return keras.Model(page, out, name="reader")


def targets(boxes: np.ndarray, classes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """What the network should answer for a page of that size with these boxes and classes:
    (H/4, W/4, TARGETS). The heat is a Gaussian round each centre, as wide as a sixth of its
    box; a cell near a centre learns that box's class, weighted by its heat."""
    h, w = size[0] // STRIDE, size[1] // STRIDE
    out = np.zeros((h, w, TARGETS), np.float32)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    for (x0, y0, x1, y1), cls in zip(boxes, classes, strict=True):
        cx, cy = (x0 + x1) / 2 / STRIDE, (y0 + y1) / 2 / STRIDE
        bw, bh = max(x1 - x0, 1.0) / STRIDE, max(y1 - y0, 1.0) / STRIDE
        sx, sy = max(0.5, bw / 6), max(0.5, bh / 6)
        i, j = min(int(cy), h - 1), min(int(cx), w - 1)
        gauss = np.exp(-((xs - j) ** 2) / (2 * sx**2) - ((ys - i) ** 2) / (2 * sy**2))
        mine = gauss > out[..., 0]
        out[..., 0] = np.maximum(out[..., 0], gauss)
        near = mine & (gauss > 0.3)
        out[..., 1][near] = cls
        out[..., 2][near] = gauss[near]
        out[i, j, 3] = 1.0
        out[i, j, 4:] = (cx - j, cy - i, np.log(bw), np.log(bh))
    return out


def loss(y_true, y_pred):
    """Focal loss on the heat (penalty-reduced near centres, as CenterNet's), cross-entropy on
    the class near each centre, L1 on offset and size at each centre."""
    heat, gt = ops.clip(y_pred[..., 0], 1e-5, 1 - 1e-5), y_true[..., 0]
    centre = y_true[..., 3]
    positives = ops.maximum(ops.sum(centre), 1.0)
    pos = -centre * (1 - heat) ** 2 * ops.log(heat)
    neg = -(1 - centre) * (1 - gt) ** 4 * heat**2 * ops.log(1 - heat)
    focal = (ops.sum(pos) + ops.sum(neg)) / positives
    weight = y_true[..., 2]
    labels = ops.cast(y_true[..., 1], "int32")
    ce = keras.losses.sparse_categorical_crossentropy(
        labels, y_pred[..., 1 : 1 + len(CLASSES)], from_logits=True
    )
    classes = ops.sum(weight * ce) / ops.maximum(ops.sum(weight), 1.0)
    geometry = ops.sum(centre[..., None] * ops.abs(y_pred[..., -4:] - y_true[..., 4:])) / positives
    return focal + classes + 0.5 * geometry
