"""Check analytic gradients against central finite differences in float64."""
from ..backend import xp
from ..core.tensor import Tensor
from ..core.autodiff import grad


class GradcheckError(AssertionError):
    """Analytic and numerical gradients disagree."""


def gradcheck(fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-5, seed=0):
    """Compare the gradients of `fn` at `inputs` with central finite differences.

    fn: takes the inputs as Tensors and returns a Tensor or a list/tuple of Tensors.
    inputs: Tensors or arrays; they are copied to float64 leaves that require grad.

    Non-scalar outputs are reduced to sum(v * output) with a fixed random v, which checks
    the vjp along v (any wrong entry of the Jacobian shows up with probability one).

    Returns True, or raises GradcheckError naming the input, the worst element's index and
    both values.
    """
    leaves = []
    for i, x in enumerate(inputs):
        data = x.data if isinstance(x, Tensor) else xp.asarray(x)
        if not xp.issubdtype(data.dtype, xp.floating):
            raise TypeError(f"gradcheck: input {i} has dtype {data.dtype}; only floating-point "
                            "inputs can be checked")
        name = x.name if isinstance(x, Tensor) and x.name else f"input {i}"
        leaves.append(Tensor(data.astype(xp.float64), name=name, requires_grad=True))

    outputs = _outputs(fn(*leaves))
    rng = xp.random.default_rng(seed)
    # A scalar output is checked as it is, so the reported values are its gradient.
    cotangents = [xp.ones(out.shape) if out.size == 1 and len(outputs) == 1
                  else rng.standard_normal(out.shape) for out in outputs]

    def objective():
        # Recording stays on: fn may itself call grad (checking a second derivative).
        outs = _outputs(fn(*leaves))
        return float(sum(xp.sum(v * out.data) for v, out in zip(cotangents, outs)))

    analytic = grad(outputs, leaves, grad_outputs=[Tensor(v) for v in cotangents],
                    allow_unused=True)
    for leaf, g in zip(leaves, analytic):
        analytic_values = xp.zeros_like(leaf.data) if g is None else g.data
        numeric_values = xp.empty_like(leaf.data)
        for index in xp.ndindex(leaf.shape):
            original = leaf.data[index]
            leaf.data[index] = original + eps
            plus = objective()
            leaf.data[index] = original - eps
            minus = objective()
            leaf.data[index] = original
            numeric_values[index] = (plus - minus) / (2 * eps)
        excess = xp.abs(analytic_values - numeric_values) - (atol + rtol * xp.abs(numeric_values))
        # A NaN or infinite gradient on either side is a mismatch, never a pass.
        excess = xp.where(xp.isfinite(analytic_values) & xp.isfinite(numeric_values),
                          excess, xp.inf)
        if excess.size and excess.max() > 0:
            worst = xp.unravel_index(int(xp.argmax(excess)), excess.shape)
            raise GradcheckError(
                f"gradcheck: gradient of {leaf.name!r} at index {tuple(int(i) for i in worst)} "
                f"is {float(analytic_values[worst]):.10g} (analytic) but "
                f"{float(numeric_values[worst]):.10g} "
                f"(finite differences, eps={eps}); atol={atol}, rtol={rtol}")
    return True


def _outputs(result):
    outs = list(result) if isinstance(result, (list, tuple)) else [result]
    for out in outs:
        if not isinstance(out, Tensor):
            raise TypeError(f"gradcheck: fn must return Tensors, got {type(out).__name__}")
    return outs
