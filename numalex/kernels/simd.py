"""Eight floats at a time: a vector type for Numba kernels that must keep
their sums in registers.

Numba compiles loops through LLVM, which vectorises simple loops on its
own (every kernel in this folder relies on that). A matrix-multiply
micro-kernel is not a simple loop: it keeps a 6 x 16 block of sums in the
CPU's vector registers for the whole reduction and feeds them one
broadcast and two loads per step. Written as loops over a small local
array, LLVM kept that block in memory and the kernel ran at 6-7 GFLOP/s on
one core; written with this module's vectors (each local variable one
register), the same kernel runs at about 75 GFLOP/s on one Zen 3 core,
near its peak of two 8-wide fused multiply-adds per cycle.

``float32x8`` is LLVM's ``<8 x float>``. On a CPU with AVX2 (or AVX-512)
each is one 256-bit register; on an older one LLVM splits it into two
128-bit halves, so nothing here assumes a particular instruction set.
``fma8`` asks for ``llvm.fmuladd``: a fused multiply-add where the CPU has
one, a multiply and an add where it has not (``llvm.fma`` would call a
slow library routine there).

The functions are Numba intrinsics: they can be called only from compiled
code, and they do no bounds checks (the kernels that use them check their
sizes before they start, as every kernel here does).

    load8(a, i)         a[i : i+8] as a vector (a: 1-D float32, C-contiguous)
    store8(a, i, v)     a[i : i+8] = v
    splat8(x)           the float x in all eight lanes
    splat_load8(a, i)   a[i] in all eight lanes (one broadcast load)
    fma8(x, y, acc)     acc + x * y, lane by lane
    add8(x, y)          x + y
    relu8(x)            0 where x < 0, else x (a NaN stays NaN, as in PyTorch)
    max8(x, y)          x where x > y or x is NaN, else y (a NaN in either wins,
                        as in NumPy's maximum and PyTorch's max pool)
"""
from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

VECTOR = ir.VectorType(ir.FloatType(), 8)
_LANE_INDEX = ir.IntType(32)


class Float32x8(types.Type):
    """Numba's name for an LLVM <8 x float> value."""

    def __init__(self):
        super().__init__(name="float32x8")


float32x8 = Float32x8()


@register_model(Float32x8)
class _Float32x8Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, VECTOR)


def _element_pointer(context, builder, signature, args):
    """Address of array[index], the intrinsic's first two arguments (no
    bounds check, no negative wraparound)."""
    data = context.make_array(signature.args[0])(context, builder, args[0]).data
    offset = context.cast(builder, args[1], signature.args[1], types.intp)
    return builder.gep(data, [offset])


def _splat(builder, scalar):
    one = builder.insert_element(ir.Constant(VECTOR, ir.Undefined), scalar,
                                 ir.Constant(_LANE_INDEX, 0))
    return builder.shuffle_vector(one, ir.Constant(VECTOR, ir.Undefined),
                                  ir.Constant(ir.VectorType(_LANE_INDEX, 8), [0] * 8))


def _float32_element(array, index) -> bool:
    """Do the types say array[index] of a 1-D float32 array?"""
    return (isinstance(array, types.Array) and array.dtype == types.float32
            and array.ndim == 1 and isinstance(index, types.Integer))


@intrinsic
def load8(typingctx, array, index):
    if not _float32_element(array, index):
        return None

    def codegen(context, builder, signature, args):
        pointer = builder.bitcast(_element_pointer(context, builder, signature, args),
                                  VECTOR.as_pointer())
        return builder.load(pointer, align=4)
    return float32x8(array, index), codegen


@intrinsic
def store8(typingctx, array, index, value):
    if not (_float32_element(array, index) and value == float32x8):
        return None

    def codegen(context, builder, signature, args):
        pointer = builder.bitcast(_element_pointer(context, builder, signature, args),
                                  VECTOR.as_pointer())
        builder.store(args[2], pointer, align=4)
        return context.get_dummy_value()
    return types.void(array, index, value), codegen


@intrinsic
def splat8(typingctx, value):
    if not isinstance(value, (types.Float, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        return _splat(builder, context.cast(builder, args[0], signature.args[0], types.float32))
    return float32x8(value), codegen


@intrinsic
def splat_load8(typingctx, array, index):
    if not _float32_element(array, index):
        return None

    def codegen(context, builder, signature, args):
        element = _element_pointer(context, builder, signature, args)
        return _splat(builder, builder.load(element, align=4))
    return float32x8(array, index), codegen


@intrinsic
def fma8(typingctx, x, y, acc):
    if not x == y == acc == float32x8:
        return None

    def codegen(context, builder, signature, args):
        fmuladd = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(VECTOR, [VECTOR] * 3), "llvm.fmuladd.v8f32")
        return builder.call(fmuladd, args)
    return float32x8(x, y, acc), codegen


@intrinsic
def add8(typingctx, x, y):
    if not x == y == float32x8:
        return None

    def codegen(context, builder, signature, args):
        return builder.fadd(*args)
    return float32x8(x, y), codegen


@intrinsic
def relu8(typingctx, x):
    if not x == float32x8:
        return None

    def codegen(context, builder, signature, args):
        zero = ir.Constant(VECTOR, [0.0] * 8)
        negative = builder.fcmp_ordered("<", args[0], zero)
        return builder.select(negative, zero, args[0])
    return float32x8(x), codegen


@intrinsic
def max8(typingctx, x, y):
    if not x == y == float32x8:
        return None

    def codegen(context, builder, signature, args):
        greater = builder.fcmp_ordered(">", args[0], args[1])
        x_is_nan = builder.fcmp_unordered("uno", args[0], args[0])
        return builder.select(builder.or_(greater, x_is_nan), args[0], args[1])
    return float32x8(x, y), codegen
