"""Command line: `python -m tinygraph demo` runs one LSTM cell step built from primitives."""
import argparse
import sys

import numpy as np

from . import examples, grad, nodes


def demo(args):
    inputs, (h, c) = examples.lstm_cell_step(batch=args.batch, input_size=args.input_size,
                                             hidden_size=args.hidden_size, seed=args.seed)
    np.set_printoptions(precision=4, suppress=True, linewidth=100)
    print("One LSTM cell step built from primitives: A = x@Wx + h_prev@Wh + b, sliced into "
          "gates f, g, i, o;\nc = f*c_prev + g*i; h = o*tanh(c).  Loss L = sum(h) + sum(c).\n")
    print(f"h =\n{h.data}\nc =\n{c.data}\n")

    loss = h.sum() + c.sum()
    names = list(inputs)
    grads = grad(loss, [inputs[n] for n in names], create_graph=True)
    for name, g in zip(names, grads):
        print(f"dL/d{name} {g.shape} =\n{g.data}")

    forward = nodes([loss])
    backward_nodes = [n for n in nodes(grads) if n.is_backward]
    print(f"\nForward graph: {len(forward)} op nodes. Generated backward graph: "
          f"{len(backward_nodes)} op nodes:")
    for k, node in enumerate(backward_nodes):
        shapes = ", ".join(str(t.shape) for t in node.inputs)
        origin = (f"vjp of {node.forward_node.op}" if node.forward_node is not None
                  else "sum of the gradients of a tensor used twice")
        print(f"  {k:3d}  {node.op:<12} ({shapes}) -> {node.output.shape}   [{origin}]")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tinygraph", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="one LSTM cell step: outputs, gradients, backward nodes")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--input-size", type=int, default=3)
    p.add_argument("--hidden-size", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=demo)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
