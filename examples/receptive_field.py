"""How much of the image does one output pixel see? Light one pixel and find out.

The summary's RF column says one pool5 pixel of AlexNet sees 195x195 input
pixels, and neighbouring pool5 pixels are 32 input pixels apart (the jump).
Here the kernels themselves answer: with positive weights and zero biases, a
black image with a single white pixel lights up exactly the outputs whose
windows contain that pixel.

    python examples/receptive_field.py
"""
import numpy as np

import numalex
from numalex import backends

model = numalex.alexnet("original", width=1 / 16)       # small: shapes are the same
positive = {k: (np.abs(v) + 0.01 if k.endswith("weight") else np.zeros_like(v))
            for k, v in model.state_dict().items()}
rows = {r.name: r for r in numalex.summary(model).rows}
be = backends.get("numpy")

x = np.zeros((1, 3, 227, 227), np.float32)
x[0, :, 113, 113] = 1.0                                  # one white pixel in the middle
h = x
for name, spec in model.layers:
    if name == "flatten":
        break
    h = spec.forward(be, h, {s: positive[f"{name}.{s}"] for s in spec.param_shapes()})
    if name in ("conv1", "pool1", "conv2", "pool2", "conv5", "pool5"):
        lit = int((h[0] > 0).any(axis=0).sum(axis=0).max())   # lit outputs in one column
        r = rows[name]
        print(f"{name:<6} output {h.shape[2]:>2}x{h.shape[3]:<2}  RF {r.receptive_field:>3}, "
              f"jump {r.jump:>2}: the pixel reaches {lit} output row(s) "
              f"(about RF/jump = {r.receptive_field / r.jump:.1f})")
        assert lit in (r.receptive_field // r.jump, -(-r.receptive_field // r.jump))
print("one pixel reaches as many outputs as the receptive field predicts")
