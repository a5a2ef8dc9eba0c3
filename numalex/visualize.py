"""Pictures that teach: conv1's filters, and what an image looks like inside the net.

    from numalex.visualize import filters_figure, feature_maps_figure
    model = numalex.alexnet("torchvision", weights="alexnet-owt.pth")
    filters_figure(model, "conv1_filters.png")
    feature_maps_figure(model, "feature_maps.png")            # a generated test pattern
    saliency_figure(model, "saliency.png", "cat.jpg")         # d top logit / d pixels

Every title says what the picture shows and carries the numbers behind it:
the output-size arithmetic, the receptive field and the jump from
:func:`numalex.summary`. Needs matplotlib (``pip install numalex[plot]``); the
test pattern and image files also need Pillow.
"""
from __future__ import annotations

import numpy as np

from . import backends
from .backprop import top_class_gradient
from .images import VARIANT_PRESETS, get_preset, imagenet_classes, load_image, preprocess
from .layers import Conv2d, Flatten, ReLU
from .summary import summary

PLOT_HINT = "drawing needs matplotlib: pip install 'numalex[plot]'"
RANDOM_NOTE = ("Random (seeded) weights: these are noise. Trained conv1 filters show edges "
               "at many angles and colour blobs; load them with --weights FILE.")


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend; a clear error if missing."""
    try:
        import matplotlib
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(PLOT_HINT, name="matplotlib") from err
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


# ---- inputs ----------------------------------------------------------------------------
def pattern_image(size: int = 256) -> np.ndarray:
    """A (size, size, 3) uint8 picture with one idea per quadrant: vertical stripes,
    horizontal stripes, a checkerboard, and red/green/blue discs on grey. Edge
    filters answer to one orientation; colour filters to one disc."""
    y, x = np.mgrid[0:size, 0:size]
    half, period = size // 2, max(4, size // 16)
    img = np.full((size, size, 3), 128, np.uint8)
    stripes_v = ((x // (period // 2)) % 2 * 255).astype(np.uint8)
    stripes_h = ((y // (period // 2)) % 2 * 255).astype(np.uint8)
    checker = (((x // period) + (y // period)) % 2 * 255).astype(np.uint8)
    top, bottom, left, right = y < half, y >= half, x < half, x >= half
    img[top & left] = stripes_v[top & left, None]
    img[top & right] = stripes_h[top & right, None]
    img[bottom & left] = checker[bottom & left, None]
    for k, (cy, cx) in enumerate([(0.62, 0.62), (0.62, 0.88), (0.88, 0.75)]):
        disc = (y - cy * size) ** 2 + (x - cx * size) ** 2 < (size * 0.1) ** 2
        img[disc] = 0
        img[disc, k] = 255                       # red, green, blue
    return img


def model_input(model, image_path=None) -> np.ndarray:
    """(1, 3, S, S) float32, prepared with the preset the variant's weights expect."""
    preset = VARIANT_PRESETS[model.variant]
    if image_path is not None:
        x = load_image(image_path, preset)
    else:
        from PIL import Image

        x = preprocess(Image.fromarray(pattern_image()), preset)
    return x[None]


def displayable(x: np.ndarray, variant: str) -> np.ndarray:
    """Undo the preset's normalisation: (3, H, W) model input -> (H, W, 3) RGB in [0, 1]."""
    preset = get_preset(VARIANT_PRESETS[variant])
    pixels = x.transpose(1, 2, 0) * np.float32(preset.std) + np.float32(preset.mean)
    pixels = pixels / preset.scale / 255.0
    if preset.bgr:
        pixels = pixels[:, :, ::-1]
    return np.clip(pixels, 0, 1)


# ---- activations -------------------------------------------------------------------------
def default_layers(model) -> list[str]:
    """The ReLUs after conv1, conv2 and the last conv: early, middle, late."""
    names = [name for name, _ in model.layers]
    convs = [i for i, (_, spec) in enumerate(model.layers) if isinstance(spec, Conv2d)]
    picked = []
    for i in (convs[0], convs[1], convs[-1]):
        after = model.layers[i + 1][1] if i + 1 < len(names) else None
        picked.append(names[i + 1] if isinstance(after, ReLU) else names[i])
    return picked


def check_layer_names(model, names) -> None:
    """ValueError naming any layer the model does not have, or that has no
    feature maps (it comes after the flatten), and listing those that do."""
    known = [name for name, _ in model.layers]
    unknown = [n for n in names if n not in known]
    flat = next(i for i, (_, spec) in enumerate(model.layers) if isinstance(spec, Flatten))
    if unknown:
        raise ValueError(f"unknown layer(s) {', '.join(unknown)} for {model.variant!r}; "
                         f"layers with feature maps are: {', '.join(known[:flat])}")
    late = [n for n in names if known.index(n) >= flat]
    if late:
        raise ValueError(f"layer(s) {', '.join(late)} come after the flatten: no feature "
                         f"maps to draw; layers with feature maps are: "
                         f"{', '.join(known[:flat])}")


def activations(model, x, names, backend="numpy") -> dict[str, np.ndarray]:
    """Run the conv trunk layer by layer; keep the outputs of the named layers.

    x: (1, 3, H, W) -> {name: (C, h, w)}.
    """
    check_layer_names(model, names)
    model.expected_shapes(x.shape[1:])
    be = backends.get(backend)
    sd = model.state_dict()
    h, kept = be.to_backend(x), {}
    for name, spec in model.layers:
        if isinstance(spec, Flatten) or len(kept) == len(set(names)):
            break
        h = spec.forward(be, h, {s: sd[f"{name}.{s}"] for s in spec.param_shapes()})
        if name in names:
            kept[name] = be.to_numpy(h)[0]
    return kept


# ---- figures -------------------------------------------------------------------------------
def filters_figure(model, path, random_weights: bool = True) -> str:
    """A grid of conv1's filters as small RGB pictures, one per output channel."""
    plt = pyplot()
    name, conv = next((n, s) for n, s in model.layers if isinstance(s, Conv2d))
    w = model.state_dict()[f"{name}.weight"]                 # (O, 3, k, k)
    if get_preset(VARIANT_PRESETS[model.variant]).bgr:
        w = w[:, ::-1]                                       # Caffe filters read BGR
    count = w.shape[0]
    cols = 8 if count <= 64 else 12
    rows = -(-count // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.1, rows * 1.1 + 1.2),
                             layout="constrained")
    for i, ax in enumerate(np.ravel(axes)):
        ax.axis("off")
        if i < count:
            f = w[i].transpose(1, 2, 0)                      # (k, k, 3)
            f = (f - f.min()) / (f.max() - f.min() + 1e-12)  # each filter scaled to [0, 1]
            ax.imshow(f, interpolation="nearest")
            ax.set_title(str(i), fontsize=6, pad=1)
    fig.suptitle(f"{name} of {model.variant!r}: {count} filters of 3x{conv.kernel}x"
                 f"{conv.kernel} (shown as RGB), stride {conv.stride}, padding "
                 f"{conv.padding}\nEach filter is one output channel's template: it "
                 f"responds where an {conv.kernel}x{conv.kernel} patch looks like it.",
                 fontsize=9)
    if random_weights:
        fig.supxlabel(RANDOM_NOTE, fontsize=8, color="firebrick")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def feature_maps_figure(model, path, image_path=None, layers=None, channels: int = 8,
                        backend: str = "numpy") -> str:
    """The input, then for each chosen layer its most active channels."""
    plt = pyplot()
    layers = list(layers or default_layers(model))
    x = model_input(model, image_path)
    maps = activations(model, x, layers, backend)
    rows = {r.name: r for r in summary(model, x.shape[2]).rows}
    fig, axes = plt.subplots(len(layers) + 1, channels,
                             figsize=(channels * 1.5, (len(layers) + 1) * 1.9 + 0.6),
                             squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    axes[0, 0].imshow(displayable(x[0], model.variant))
    source = image_path or "generated test pattern"
    axes[0, 0].set_title("input", fontsize=8)
    axes[0, 1].text(0, 0.5, f"{source}, {x.shape[2]}x{x.shape[3]}, prepared as the "
                    f"{VARIANT_PRESETS[model.variant]} weights expect.\nBelow: for each layer, "
                    f"its {channels} most active channels (bright = strong response).\n"
                    f"RF = input pixels one output pixel sees; jump = input pixels "
                    f"between neighbouring outputs.", fontsize=8, va="center")
    for row, name in enumerate(layers, start=1):
        act = maps[name]                                     # (C, h, w)
        top = np.argsort(act.mean(axis=(1, 2)))[::-1][:channels]
        for col, c in enumerate(top):
            axes[row, col].imshow(act[c], cmap="magma")
            axes[row, col].set_title(f"ch {c}", fontsize=7, pad=1)
        r = rows[name]
        c, h, w = r.output_shape
        formula = _size_story(model, name, rows)
        axes[row, 0].text(-0.15, 1.28, f"{name} ({r.type}): {c}x{h}x{w}; RF "
                          f"{r.receptive_field}x{r.receptive_field}, jump {r.jump}   "
                          f"{formula}", transform=axes[row, 0].transAxes, fontsize=8)
    fig.suptitle(f"Inside {model.variant!r}: feature maps get smaller and see more of the "
                 f"image at each layer", fontsize=10)
    fig.subplots_adjust(left=0.03, right=0.98, top=0.93, bottom=0.02, hspace=0.7)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)


def saliency_figure(model, path, image_path=None, backend: str = "numpy",
                    random_weights: bool = True) -> str:
    """The input beside its saliency map: |d top-class logit / d pixel|, the
    largest over the colour channels (Simonyan, Vedaldi & Zisserman 2013).
    Bright pixels are those whose change would move the top class most; the
    gradient comes from one backward pass (numalex.backprop)."""
    plt = pyplot()
    x = model_input(model, image_path)
    (top,), (logit,), dx = top_class_gradient(model, x, backend)
    saliency = np.abs(dx[0]).max(axis=0)                     # (H, W)
    label = imagenet_classes()[top] if model.num_classes == 1000 else f"class {top}"
    fig, axes = plt.subplots(1, 2, figsize=(9, 5), layout="constrained")
    axes[0].imshow(displayable(x[0], model.variant))
    axes[0].set_title(f"{image_path or 'generated test pattern'}, "
                      f"{x.shape[2]}x{x.shape[3]}", fontsize=9)
    axes[1].imshow(saliency, cmap="inferno")
    axes[1].set_title(f"|d logit[{top}] / d pixel|, largest over the channels "
                      f"(max {saliency.max():.3g})", fontsize=9)
    for ax in axes:
        ax.axis("off")
    fig.suptitle(f"Saliency in {model.variant!r}: top class {top} ({label}), logit "
                 f"{logit:.3g}\nthe gradient of that logit with respect to every input "
                 f"pixel, by backpropagation", fontsize=10)
    if random_weights:
        fig.supxlabel("Random (seeded) weights: the map outlines no object. Load trained "
                      "weights with --weights FILE.", fontsize=8,
                      color="firebrick")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)


def _size_story(model, name, rows) -> str:
    """The last size arithmetic at or before `name` (a ReLU keeps its conv's size)."""
    names = [n for n, _ in model.layers]
    for n in reversed(names[:names.index(name) + 1]):
        if n in rows and rows[n].size_formula:
            return f"{n}: {rows[n].size_formula}"
    return ""
