"""The three AlexNets side by side: torchvision (224), original (227), bvlc (Caffe).

Every number is computed from the layer specs by numalex.summary: output
shapes, parameters, multiply-adds. Then each variant runs one forward pass
at 1/8 width (same shapes, fewer channels) to show the shapes are real.

    python examples/variants_side_by_side.py
"""
import numpy as np

import numalex

VARIANTS = ["torchvision", "original", "bvlc"]
SHOWN = {"Conv2d": "conv", "MaxPool2d": "pool", "LRN": "norm", "AdaptiveAvgPool2d": "avgpool",
         "Linear": "fc"}


def labelled_rows(table):
    """{label: row} with Caffe-style labels for every variant: conv1..5, pool1/2/5, fc6..8."""
    numbers = {"conv": [1, 2, 3, 4, 5], "pool": [1, 2, 5], "norm": [1, 2], "avgpool": [""],
               "fc": [6, 7, 8]}
    seen, rows = {}, {}
    for row in table.rows:
        kind = SHOWN.get(row.type)
        if kind:
            index = seen.setdefault(kind, 0)
            seen[kind] += 1
            rows[f"{kind}{numbers[kind][index]}"] = row
    return rows


tables = {}
for name in VARIANTS:
    model = numalex.alexnet(name)                    # full size, seeded random weights
    tables[name] = numalex.summary(model)
    del model                                        # 60M parameters each: free them

labels = ["conv1", "norm1", "pool1", "conv2", "norm2", "pool2", "conv3", "conv4", "conv5",
          "pool5", "avgpool", "fc6", "fc7", "fc8"]
columns = {name: labelled_rows(tables[name]) for name in VARIANTS}
print(f"{'layer':<8}" + "".join(f"{name + ' ' + str(tables[name].input_shape[1]):>36}"
                               for name in VARIANTS))
for label in labels:
    cells = []
    for name in VARIANTS:
        row = columns[name].get(label)
        cells.append("-" if row is None else
                     f"{'x'.join(map(str, row.output_shape))}  {row.params:>11,}")
    print(f"{label:<8}" + "".join(f"{cell:>36}" for cell in cells))
print(f"{'total':<8}" + "".join(f"{tables[n].total_params:>36,}" for n in VARIANTS))
print(f"{'MACs':<8}" + "".join(f"{tables[n].total_macs:>36,}" for n in VARIANTS))

print("\nconv1 of each variant:")
for name in VARIANTS:
    print(f"  {name:<12} {columns[name]['conv1'].size_formula}")

print("\none forward pass each, at 1/8 width:")
rng = np.random.default_rng(0)
for name in VARIANTS:
    small = numalex.alexnet(name, width=0.125, num_classes=10)
    x = rng.standard_normal((2, 3, small.input_size, small.input_size)).astype(np.float32)
    records = small.trace(x)
    assert all(r.ok for r in records)                # every shape is the formula's
    pool5 = [r for r in records if r.type == "MaxPool2d"][-1]
    print(f"  {name:<12} {x.shape} -> pool5 {pool5.output_shape} -> logits "
          f"{records[-1].output_shape}")
print("side by side: every shape matches the formula")
