"""Branch-free float32 math in IR (Cephes polynomials), so loops that use it vectorise on every
target and give the same results everywhere; no libm calls.

Each function is an internal `alwaysinline` IR function emitted once per module on first use.
Accuracy: expf, logf within 2 ulp; tanhf within 3 ulp; NaN, infinities and zero handled like libm.
The rounding steps use plain (strict) float ops: fast-math would fold the magic-number rounding.
"""

from __future__ import annotations

from core.compiler.emitter import Function, Module, f32

_EXP_HI = 88.72283935546875
_EXP_LO = -103.97208404541015625
_LOG2E = 1.44269504088896341
_LN2_HI = 0.693359375
_LN2_LO = -2.12194440e-4
_ROUND = 12582912.0  # 1.5 * 2^23: x + C - C rounds x to the nearest integer
_EXP_POLY = (
    1.9875691500e-4,
    1.3981999507e-3,
    8.3334519073e-3,
    4.1665795894e-2,
    1.6666665459e-1,
    5.0000001201e-1,
)
_LOG_POLY = (
    7.0376836292e-2,
    -1.1514610310e-1,
    1.1676998740e-1,
    -1.2420140846e-1,
    1.4249322787e-1,
    -1.6668057665e-1,
    2.0000714765e-1,
    -2.4999993993e-1,
    3.3333331174e-1,
)
_TANH_POLY = (-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2, 1.33314422036e-1, -3.33332819422e-1)


def _poly(fn: Function, x: str, coeffs) -> str:
    acc = f32(coeffs[0])
    for c in coeffs[1:]:
        acc = fn.fadd(fn.fmul(acc, x, fast=False), f32(c), fast=False)
    return acc


def _pow2(fn: Function, n_int: str) -> str:
    """2^n as float for an i32 n in the normal exponent range."""
    e = fn.iop("add", n_int, "127")
    bits = fn.iop("shl", e, "23")
    return fn.assign(f"bitcast i32 {bits} to float")


def _emit_exp(m: Module) -> None:
    fn = m.function("kws_expf", "float", [("float", "x")], internal=True, inline=True)
    x = "%x"
    hi = fn.fcmp("ogt", x, f32(_EXP_HI))
    xc = fn.select(hi, f32(_EXP_HI), x)
    lo = fn.fcmp("olt", xc, f32(_EXP_LO))
    xc = fn.select(lo, f32(_EXP_LO), xc)
    t = fn.fmul(xc, f32(_LOG2E), fast=False)
    n = fn.fsub(fn.fadd(t, f32(_ROUND), fast=False), f32(_ROUND), fast=False)
    r = fn.fsub(xc, fn.fmul(n, f32(_LN2_HI), fast=False), fast=False)
    r = fn.fsub(r, fn.fmul(n, f32(_LN2_LO), fast=False), fast=False)
    p = _poly(fn, r, _EXP_POLY)
    r2 = fn.fmul(r, r, fast=False)
    y = fn.fadd(fn.fadd(fn.fmul(p, r2, fast=False), r, fast=False), f32(1.0), fast=False)
    ni = fn.assign(f"fptosi float {n} to i32")
    n1 = fn.iop("ashr", ni, "1")
    n2 = fn.iop("sub", ni, n1)
    y = fn.fmul(fn.fmul(y, _pow2(fn, n1), fast=False), _pow2(fn, n2), fast=False)
    y = fn.select(hi, f32(float("inf")), y)
    nan = fn.fcmp("uno", x, x)
    fn.ret(fn.select(nan, x, y))


def _emit_log(m: Module) -> None:
    fn = m.function("kws_logf", "float", [("float", "x")], internal=True, inline=True)
    x = "%x"
    tiny = fn.fcmp("olt", x, f32(1.17549435e-38))
    xs = fn.select(tiny, fn.fmul(x, f32(8388608.0), fast=False), x)  # scale subnormals by 2^23
    bits = fn.assign(f"bitcast float {xs} to i32")
    e = fn.iop("sub", fn.iop("lshr", bits, "23"), "126")
    e = fn.select(tiny, fn.iop("sub", e, "23"), e, "i32")
    mant_bits = fn.iop("or", fn.iop("and", bits, "8388607"), "1056964608")  # mantissa in [0.5, 1)
    mant = fn.assign(f"bitcast i32 {mant_bits} to float")
    small = fn.fcmp("olt", mant, f32(0.707106781186547524))
    e = fn.select(small, fn.iop("sub", e, "1"), e, "i32")
    mm = fn.select(small, fn.fadd(mant, mant, fast=False), mant)
    mm = fn.fsub(mm, f32(1.0), fast=False)
    ef = fn.assign(f"sitofp i32 {e} to float")
    z = fn.fmul(mm, mm, fast=False)
    y = fn.fmul(fn.fmul(_poly(fn, mm, _LOG_POLY), mm, fast=False), z, fast=False)
    y = fn.fadd(y, fn.fmul(ef, f32(_LN2_LO), fast=False), fast=False)
    y = fn.fsub(y, fn.fmul(z, f32(0.5), fast=False), fast=False)
    r = fn.fadd(mm, y, fast=False)
    r = fn.fadd(r, fn.fmul(ef, f32(_LN2_HI), fast=False), fast=False)
    # specials: log(0) = -inf, log(x<0) = nan, log(inf) = inf, log(nan) = nan
    r = fn.select(fn.fcmp("oeq", x, f32(0.0)), f32(float("-inf")), r)
    r = fn.select(fn.fcmp("olt", x, f32(0.0)), "0x7FF8000000000000", r)
    r = fn.select(fn.fcmp("oeq", x, f32(float("inf"))), x, r)
    fn.ret(fn.select(fn.fcmp("uno", x, x), x, r))


def _emit_tanh(m: Module) -> None:
    exp = use(m, "exp")
    fn = m.function("kws_tanhf", "float", [("float", "x")], internal=True, inline=True)
    x = "%x"
    ax = fn.intrinsic("fabs", "float", [x])
    # small |x|: odd polynomial; large: 1 - 2 / (exp(2|x|) + 1) with the sign of x
    z = fn.fmul(x, x, fast=False)
    ps = fn.fadd(fn.fmul(fn.fmul(_poly(fn, z, _TANH_POLY), z, fast=False), x, fast=False), x, fast=False)
    e = fn.call("float", exp, [("float", fn.fmul(ax, f32(2.0), fast=False))])
    big = fn.fsub(f32(1.0), fn.fdiv(f32(2.0), fn.fadd(e, f32(1.0), fast=False), fast=False), fast=False)
    big = fn.intrinsic("copysign", "float", [big, x])
    r = fn.select(fn.fcmp("olt", ax, f32(0.625)), ps, big)
    fn.ret(fn.select(fn.fcmp("uno", x, x), x, r))


def _emit_sigmoid(m: Module) -> None:
    exp = use(m, "exp")
    fn = m.function("kws_sigmoidf", "float", [("float", "x")], internal=True, inline=True)
    e = fn.call("float", exp, [("float", fn.assign("fneg float %x"))])
    fn.ret(fn.fdiv(f32(1.0), fn.fadd(f32(1.0), e, fast=False), fast=False))


_EMITTERS = {
    "exp": ("kws_expf", _emit_exp),
    "log": ("kws_logf", _emit_log),
    "tanh": ("kws_tanhf", _emit_tanh),
    "sigmoid": ("kws_sigmoidf", _emit_sigmoid),
}


def use(m: Module, name: str) -> str:
    """The IR function name (`@kws_expf`) of a math function, emitting it into `m` once."""
    fname, emit = _EMITTERS[name]
    if not any(f.name == fname for f in m.functions):
        emit(m)
    return "@" + fname
