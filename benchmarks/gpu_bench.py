"""Per-layer GPU benchmark of numalex's CUDA kernels, timed with CUDA events.

    python benchmarks/gpu_bench.py                         # torchvision, batch 1
    python benchmarks/gpu_bench.py --variant bvlc --batch 16 --repeat 50
    python benchmarks/gpu_bench.py --tiles 32,8,16         # another GEMM tile shape
    python benchmarks/gpu_bench.py --batch 1,32,128 --versions 1,2,3,4,5,auto
                                                           # the ladder, rung by rung

NEEDS A CUDA DEVICE. Without one it says so and exits with status 0; under
the CUDA simulator it refuses too (a full-size net would take hours there,
and simulated events do not time) unless --small asks for a tiny net: then
it validates every layer and times nothing, which checks the script itself.

For every layer with a kernel, at the layer's real input shape:
1. validate: the CUDA output must equal the NumPy reference
   (|cuda - ref| <= 1e-4 * (|ref| + max|ref|)); the first mismatches are
   printed and nothing is timed if any layer is wrong;
2. time: one warm-up call (compiles the kernel), then --repeat calls
   between two CUDA events;
3. napkin math: GFLOP/s = 2 * multiply-adds / time, its share of the device's
   FP32 peak (multiprocessors x FP32 lanes x 2 x clock), GB/s = (input +
   output + weights) bytes / time, beside the same op in torch.cuda (cuDNN
   for the convolutions, TF32 off) when PyTorch with CUDA is installed.
With --versions, one table per conv version of the ladder (cuda_ladder.py;
`auto` is the version the backend picks per layer) and per batch.
Finally the whole forward pass, including its one copy in and one copy out.
"""
from __future__ import annotations

import argparse
import sys
from functools import partial
from types import SimpleNamespace

import numpy as np

import numalex
from numalex import backends
from numalex.backends import numpy_ref
from numalex.layers import LRN, AdaptiveAvgPool2d, Conv2d, Linear, MaxPool2d, ReLU

TIMED = (Conv2d, Linear, MaxPool2d, AdaptiveAvgPool2d, LRN, ReLU)
OPS = ("conv2d", "linear", "max_pool2d", "adaptive_avg_pool2d", "lrn", "relu")


def tile_sizes(text: str) -> tuple[int, int, int]:
    """'16,16,32' -> (16, 16, 32)."""
    try:
        m, n, k = (int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected three integers m,n,k, got {text!r}") from None
    return m, n, k


def int_list(text: str) -> list[int]:
    """'1,32,128' -> [1, 32, 128], each positive."""
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") \
            from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be positive, got {text!r}")
    return values


def version_list(text: str) -> list:
    """'1,2,auto' -> [1, 2, 'auto'], each a rung of the ladder or auto."""
    from numalex.backends.cuda_ladder import VERSIONS
    values = [part if part == "auto" else int(part) if part.isdigit() else part
              for part in text.split(",")]
    bad = [v for v in values if v != "auto" and v not in VERSIONS]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown versions {bad}; the ladder has "
                                         f"{VERSIONS} (or auto)")
    return values


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", default="torchvision",
                        help="torchvision, original or bvlc (default: torchvision)")
    parser.add_argument("--batch", type=int_list, default=[1],
                        help="batch sizes, comma-separated (default: 1)")
    parser.add_argument("--versions", type=version_list, default=["auto"],
                        help="conv versions of the ladder to time, comma-separated: 1-5 "
                             "or auto (default: auto); a version that does not apply to a "
                             "layer (5 needs 3x3 stride 1) falls back to auto there")
    parser.add_argument("--repeat", type=int, default=20, help="timed calls per layer")
    parser.add_argument("--tiles", default=None, type=tile_sizes,
                        help="GEMM tiles m,n,k for conv and linear (default: fitted per layer)")
    parser.add_argument("--small", action="store_true",
                        help="a tiny net (width 1/32, 63x63 input): checks the script, "
                             "also in the simulator")
    return parser.parse_args(argv)


def cuda_backend():
    """The CUDA backend module, or None after saying why it cannot run here."""
    try:
        return backends.get("cuda")
    except backends.BackendUnavailable as err:
        print(f"gpu_bench needs a CUDA device: {err}", file=sys.stderr)
        return None


def torch_op(spec, torch):
    """The same layer as a torch.nn.functional call, or None for a missing torch."""
    fn = torch.nn.functional
    if isinstance(spec, Conv2d):
        return lambda x, p: fn.conv2d(x, p["weight"], p["bias"], spec.stride, spec.padding,
                                      spec.dilation, spec.groups)
    if isinstance(spec, Linear):
        return lambda x, p: fn.linear(x, p["weight"], p["bias"])
    if isinstance(spec, MaxPool2d):
        return lambda x, p: fn.max_pool2d(x, spec.kernel, spec.stride, spec.padding,
                                          ceil_mode=spec.ceil_mode)
    if isinstance(spec, AdaptiveAvgPool2d):
        return lambda x, p: fn.adaptive_avg_pool2d(x, spec.out)
    if isinstance(spec, LRN):
        return lambda x, p: fn.local_response_norm(x, spec.size, spec.alpha, spec.beta, spec.k)
    return lambda x, p: fn.relu(x)


def cuda_torch():
    """torch, if it is installed with a usable CUDA device; else None."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    torch.backends.cudnn.benchmark = True                  # let cuDNN pick its fastest algorithm
    return torch


def time_cuda(run, cuda, repeat: int) -> float:
    """Milliseconds per call of run(), between two CUDA events, after a warm-up."""
    run()
    start, stop = cuda.event(), cuda.event()
    start.record()
    for _ in range(repeat):
        run()
    stop.record()
    stop.synchronize()
    return start.elapsed_time(stop) / repeat


def time_torch(run, torch, repeat: int) -> float:
    run()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeat):
        run()
    stop.record()
    torch.cuda.synchronize()
    return start.elapsed_time(stop) / repeat


def mismatches(got: np.ndarray, want: np.ndarray, show: int = 5) -> list[str]:
    """The first `show` entries where got and want differ by more than the tolerance."""
    tolerance = 1e-4 * (np.abs(want) + np.abs(want).max())
    bad = np.argwhere(np.abs(got - want) > tolerance)
    return [f"  at {tuple(int(i) for i in idx)}: cuda {got[tuple(idx)]:.6g}, "
            f"reference {want[tuple(idx)]:.6g}" for idx in bad[:show]]


def layer_cases(model, batch: int, rng):
    """(name, spec, input, params) for every layer that runs a kernel."""
    params = model.state_dict()
    for (name, spec), (in_shape, _) in zip(model.layers, model.expected_shapes()):
        if isinstance(spec, TIMED):
            x = rng.standard_normal((batch,) + in_shape, dtype=np.float32)
            layer_params = {suffix: params[f"{name}.{suffix}"] for suffix in spec.param_shapes()}
            yield name, spec, x, layer_params


def kernels_with_tiles(be, tiles, version="auto"):
    """The backend's ops, with conv2d and linear fixed to `tiles` (None: fitted)
    and conv2d to one `version` of the ladder ("auto": the backend's choice;
    Winograd, 5, only where it applies: 3x3, stride 1)."""
    from numalex.backends.cuda_winograd import supports

    ops = SimpleNamespace(**{op: getattr(be, op) for op in OPS})
    if tiles is not None:
        ops.linear = partial(be.linear, tiles=tiles)

    def conv2d(x, w, b, stride=1, padding=0, groups=1, dilation=1, **options):
        fixed = version != "auto" and (version != 5 or supports(*w.shape[2:], stride, dilation))
        return be.conv2d(x, w, b, stride, padding, groups, dilation, tiles=tiles,
                         version=version if fixed else None, **options)

    ops.conv2d = conv2d
    return ops


def fp32_peak_gflops(cuda) -> float:
    """multiprocessors x FP32 lanes per multiprocessor x 2 FLOP x clock, in GFLOP/s.
    Lanes per multiprocessor by compute capability, from NVIDIA's programming guide."""
    device = cuda.get_current_device()
    lanes = {(7, 0): 64, (7, 5): 64, (8, 0): 64}.get(device.compute_capability, 128)
    return (device.MULTIPROCESSOR_COUNT * lanes * 2 * device.CLOCK_RATE * 1e3) / 1e9


def layer_table(model, kernels, be, torch, batch: int, repeat: int, peak: float) -> bool:
    """Validate, then time, every layer at `batch`; print one row each. False
    (and nothing timed) if a layer does not match the reference."""
    cuda, timing = be.cuda, not be.is_simulator()
    header = (f"{'layer':<14}{'op':<18}{'output':<20}{'ms':>9}{'GFLOP/s':>10}"
              f"{'% peak':>8}{'GB/s':>8}")
    print(header + (f"{'torch ms':>10}{'vs torch':>10}" if torch else ""))
    rng = np.random.default_rng(0)
    for name, spec, x, params in layer_cases(model, batch, rng):
        want = spec.forward(numpy_ref, x, params)
        x_dev, params_dev = be.to_backend(x), be.prepare_params(params)
        got = be.to_numpy(spec.forward(kernels, x_dev, params_dev))
        bad = mismatches(got, want)
        if got.shape != want.shape or bad:
            print(f"{name}: the CUDA kernel does not match the reference, nothing timed "
                  f"(shapes {got.shape} vs {want.shape}):\n" + "\n".join(bad))
            return False
        ms = (time_cuda(lambda: spec.forward(kernels, x_dev, params_dev), cuda, repeat)
              if timing else float("nan"))
        flops = 2 * spec.macs(x.shape[1:]) * batch
        moved = 4 * (x.size + want.size + sum(p.size for p in params.values()))
        line = (f"{name:<14}{type(spec).__name__:<18}{str(want.shape):<20}{ms:>9.3f}"
                f"{flops / ms / 1e6:>10.1f}{flops / ms / 1e6 / peak:>8.1%}"
                f"{moved / ms / 1e6:>8.1f}")
        if torch:
            x_t = torch.from_numpy(x).cuda()
            p_t = {key: torch.from_numpy(value).cuda() for key, value in params.items()}
            op = torch_op(spec, torch)
            torch_ms = time_torch(lambda: op(x_t, p_t), torch, repeat)
            line += f"{torch_ms:>10.3f}{torch_ms / ms:>9.2f}x"
        print(line)
    return True


def whole_forward(model, be, batch: int, repeat: int) -> bool:
    """Validate and time the whole forward pass (the backend's own choices)."""
    x = np.random.default_rng(1).standard_normal((batch,) + model.input_shape,
                                                  dtype=np.float32)
    bad = mismatches(model(x, backend="cuda"), model(x, backend="numpy"))   # uploads weights
    if bad:
        print("the whole forward does not match the reference:\n" + "\n".join(bad))
        return False
    timing = not be.is_simulator()
    forward_ms = (time_cuda(lambda: model(x, backend="cuda"), be.cuda, max(1, repeat // 4))
                  if timing else float("nan"))
    total = 2 * sum(spec.macs(shape) for (_, spec), (shape, _)
                    in zip(model.layers, model.expected_shapes())) * batch
    print(f"\nwhole forward at batch {batch} (one copy in, one copy out): "
          f"{forward_ms:.3f} ms, {total / forward_ms / 1e6:.1f} GFLOP/s, "
          f"{batch / forward_ms * 1e3:.1f} images/s\n")
    return True


def main(argv=None) -> int:
    args = parse_args(argv)
    be = cuda_backend()
    if be is None:
        return 0
    if be.is_simulator() and not args.small:
        print("gpu_bench needs a real CUDA device: only the CUDA simulator is here, where a "
              "full-size net takes hours and timings mean nothing. Use --small to check the "
              "script in the simulator.", file=sys.stderr)
        return 0
    cuda = be.cuda
    timing = not be.is_simulator()                         # simulated events do not time
    try:
        tiles = None if args.tiles is None else be.GemmTiles(*args.tiles)
    except ValueError as err:
        print(f"gpu_bench: --tiles: {err}", file=sys.stderr)
        return 2
    size = dict(width=1 / 32, input_size=63, num_classes=10) if args.small else {}
    model = numalex.alexnet(args.variant, **size)
    torch = cuda_torch()
    if torch:
        torch.backends.cuda.matmul.allow_tf32 = False      # compare FP32 with FP32
        torch.backends.cudnn.allow_tf32 = False
    device = cuda.get_current_device().name if timing else "CUDA simulator (validation only)"
    peak = fp32_peak_gflops(cuda) if timing else float("nan")
    calls = f"{args.repeat} timed calls per layer" if timing else "nothing timed"
    print(f"{model}\ndevice: {device}, FP32 peak {peak:.0f} GFLOP/s; {calls}; "
          f"tiles: {tiles or 'fitted per layer'}; "
          f"torch.cuda: {'yes (cuDNN, TF32 off)' if torch else 'not available'}\n")
    for batch in args.batch:
        for version in args.versions:
            print(f"-- batch {batch}, conv version {version}")
            kernels = kernels_with_tiles(be, tiles, version)
            if not layer_table(model, kernels, be, torch, batch, args.repeat, peak):
                return 1
        if not whole_forward(model, be, batch, args.repeat):
            return 1
    if not timing:
        print("(simulator: every output was validated; nothing was timed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
