"""A software prefetch for the compiled kernels (imported with Numba, only by ``kernels._define``).

The solver's passes gather each neighbour's score from a random place in a
vector of several megabytes. The processor fetches the matrix's stream ahead
on its own, but not the places that stream points at, so every gather waits
for its cache line. :func:`prefetch` asks for ``values[index]`` a fixed number
of entries before the loop reads it (LLVM's ``llvm.prefetch``). It reads and
writes nothing a program can see, so results do not change by a bit.

A kernel finds it as a module global of ``kernels``: Numba's disk cache never
finds again a kernel that calls a compiled object held in a closure. That
cache is keyed by ``kernels.py``'s source, so a change to this module takes
effect once ``kernels.py`` changes too (or the cache is cleared).
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic


@intrinsic
def prefetch(typingctx, values, index):
    """Hint that ``values.flat[index]`` will be read soon (keep it in every cache level)."""
    if not isinstance(values, types.Array) or not isinstance(index, types.Integer):
        return None
    signature = types.void(values, index)

    def codegen(context, builder, sig, args):
        array = context.make_array(sig.args[0])(context, builder, args[0])
        address = builder.bitcast(builder.gep(array.data, [args[1]]), ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        fn = builder.module.declare_intrinsic(
            "llvm.prefetch", fnty=ir.FunctionType(ir.VoidType(), [address.type, i32, i32, i32]))
        # read (0), highest locality (3), data cache (1)
        builder.call(fn, [address, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return signature, codegen
