"""Per-layer GPU benchmark of numalex's CUDA kernels, timed with CUDA events.

    python benchmarks/gpu_bench.py                         # torchvision, batch 1
    python benchmarks/gpu_bench.py --variant bvlc --batch 16 --repeat 50
    python benchmarks/gpu_bench.py --tiles 32,8,16         # another GEMM tile shape

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
3. napkin math: GFLOP/s = 2 * multiply-adds / time, GB/s = (input + output
   + weights) bytes / time, beside the same op in torch.cuda (cuDNN for the
   convolutions) when PyTorch with CUDA is installed.
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


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", default="torchvision",
                        help="torchvision, original or bvlc (default: torchvision)")
    parser.add_argument("--batch", type=int, default=1)
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


def kernels_with_tiles(be, tiles):
    """The backend's ops, with conv2d and linear fixed to `tiles` (None: fitted)."""
    ops = SimpleNamespace(**{op: getattr(be, op) for op in OPS})
    if tiles is not None:
        ops.conv2d = partial(be.conv2d, tiles=tiles)
        ops.linear = partial(be.linear, tiles=tiles)
    return ops


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
    kernels = kernels_with_tiles(be, tiles)
    size = dict(width=1 / 32, input_size=63, num_classes=10) if args.small else {}
    model = numalex.alexnet(args.variant, **size)
    torch = cuda_torch()
    device = cuda.get_current_device().name if timing else "CUDA simulator (validation only)"
    calls = f"{args.repeat} timed calls per layer" if timing else "nothing timed"
    print(f"{model}\ndevice: {device}; batch {args.batch}; {calls}; "
          f"tiles: {tiles or 'fitted per layer'}; "
          f"torch.cuda: {'yes' if torch else 'not available'}\n")

    header = f"{'layer':<14}{'op':<18}{'output':<20}{'ms':>9}{'GFLOP/s':>10}{'GB/s':>8}"
    print(header + (f"{'torch ms':>10}{'vs torch':>10}" if torch else ""))
    rng = np.random.default_rng(0)
    for name, spec, x, params in layer_cases(model, args.batch, rng):
        want = spec.forward(numpy_ref, x, params)
        x_dev, params_dev = be.to_backend(x), be.prepare_params(params)
        got = be.to_numpy(spec.forward(kernels, x_dev, params_dev))
        bad = mismatches(got, want)
        if got.shape != want.shape or bad:
            print(f"{name}: the CUDA kernel does not match the reference, nothing timed "
                  f"(shapes {got.shape} vs {want.shape}):\n" + "\n".join(bad))
            return 1
        ms = (time_cuda(lambda: spec.forward(kernels, x_dev, params_dev), cuda, args.repeat)
              if timing else float("nan"))
        flops = 2 * spec.macs(x.shape[1:]) * args.batch
        moved = 4 * (x.size + want.size + sum(p.size for p in params.values()))
        line = (f"{name:<14}{type(spec).__name__:<18}{str(want.shape):<20}{ms:>9.3f}"
                f"{flops / ms / 1e6:>10.1f}{moved / ms / 1e6:>8.1f}")
        if torch:
            x_t = torch.from_numpy(x).cuda()
            p_t = {key: torch.from_numpy(value).cuda() for key, value in params.items()}
            op = torch_op(spec, torch)
            torch_ms = time_torch(lambda: op(x_t, p_t), torch, args.repeat)
            line += f"{torch_ms:>10.3f}{torch_ms / ms:>9.2f}x"
        print(line)

    x = rng.standard_normal((args.batch,) + model.input_shape, dtype=np.float32)
    bad = mismatches(model(x, backend="cuda"), model(x, backend="numpy"))   # uploads weights
    if bad:
        print("the whole forward does not match the reference:\n" + "\n".join(bad))
        return 1
    forward_ms = (time_cuda(lambda: model(x, backend="cuda"), cuda, max(1, args.repeat // 4))
                  if timing else float("nan"))
    total = 2 * sum(spec.macs(shape) for (_, spec), (shape, _)
                    in zip(model.layers, model.expected_shapes())) * args.batch
    print(f"\nwhole forward (one copy in, one copy out, fitted tiles): {forward_ms:.3f} ms, "
          f"{total / forward_ms / 1e6:.1f} GFLOP/s, "
          f"{args.batch / forward_ms * 1e3:.1f} images/s")
    if not timing:
        print("(simulator: every output was validated; nothing was timed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
