"""A CUDA kernel without a GPU: Numba's CUDA simulator.

With NUMBA_ENABLE_CUDASIM=1 set *before numba is imported*, @cuda.jit kernels
run on the CPU in plain Python, one simulated thread at a time: slow, but the
same indexing, the same bounds checks (stricter than a GPU: out-of-bounds
raises), and no GPU needed. Keep the shapes tiny. On a machine with a GPU, run
with NUMBA_ENABLE_CUDASIM=0 and the same code uses the device.

    python examples/cuda_simulator.py
"""
import os

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")   # must come before `import numba`

import numpy as np  # noqa: E402
from numba import cuda  # noqa: E402

import numalex  # noqa: E402
from numalex import backends  # noqa: E402


@cuda.jit
def max_pool_kernel(x, out, k, s):
    """One thread per output pixel: x (H, W) -> out (Ho, Wo), max over k x k windows.

    The grid covers out; threads past its edge do nothing (there is no
    cuda.syncthreads() here, so they may simply skip the work).
    """
    i, j = cuda.grid(2)                       # this thread's output row and column
    if i < out.shape[0] and j < out.shape[1]:
        best = x[i * s, j * s]
        for u in range(k):
            for v in range(k):
                best = max(best, x[i * s + u, j * s + v])
        out[i, j] = best


mode = "the CUDA simulator" if os.environ["NUMBA_ENABLE_CUDASIM"] == "1" else "the GPU"
print(f"running on {mode}")

x = np.arange(13 * 13, dtype=np.float32).reshape(13, 13) % 7
k, s = 3, 2
ho = numalex.conv_output_size(13, k, stride=s)       # (13 - 3)/2 + 1 = 6
out = np.zeros((ho, ho), np.float32)
threads = (4, 4)                                      # a block of 4x4 threads
blocks = (-(-ho // threads[0]), -(-ho // threads[1]))  # enough blocks to cover 6x6
print(f"pool {x.shape} -> {out.shape}: {blocks} blocks of {threads} threads "
      f"= {blocks[0] * threads[0]}x{blocks[1] * threads[1]} threads for {ho}x{ho} outputs")
d_x, d_out = cuda.to_device(x), cuda.to_device(out)
max_pool_kernel[blocks, threads](d_x, d_out, k, s)
result = d_out.copy_to_host()

reference = backends.get("numpy").max_pool2d(x[None, None], k, s)[0, 0]
assert np.array_equal(result, reference)
print("hand-written kernel matches the NumPy reference")

if "cuda" in backends.available():
    # numalex's own CUDA backend: device arrays in, device arrays out
    cuda_be, numpy_be = backends.get("cuda"), backends.get("numpy")
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((1, 3, 9, 9)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    y = cuda_be.to_numpy(cuda_be.conv2d(cuda_be.to_backend(xs), cuda_be.to_backend(w),
                                        cuda_be.to_backend(b), stride=2, padding=1))
    want = numpy_be.conv2d(xs, w, b, stride=2, padding=1)
    print(f"numalex cuda conv2d {xs.shape} -> {y.shape}, max difference "
          f"{np.abs(y - want).max():.1e}")
    assert np.allclose(y, want, atol=1e-4)
else:
    print("numalex's cuda backend is not available here (pip install 'numalex[cuda]')")
print("simulated CUDA kernels agree with NumPy")
