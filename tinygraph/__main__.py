"""Command line.

    python -m tinygraph demo [--out DIR]
        One LSTM cell step built from primitives: prints its outputs, its gradients and the
        generated backward nodes, and draws its forward and backward graphs into DIR.
    python -m tinygraph render MODULE:FUNCTION|EXAMPLE --view both -o out.svg
        Draws the graph of the tensors a function returns (svg, png, pdf or dot).
    python -m tinygraph render --list
        Lists the built-in examples, with their parameters and defaults.
    python -m tinygraph render lstm_unrolled --steps 20 --forget-bias 1 -o unrolled.svg
        An example's parameters are options of render, explore and export-onnx.
    python -m tinygraph explore MODULE:FUNCTION|EXAMPLE -o graph.html
        Writes the interactive explorer of the graph: one self-contained, offline HTML file.
    python -m tinygraph diff A B --a-variant generated -o diff.html
        Two backward graphs side by side (A, B: examples or MODULE:FUNCTION), nodes matched.
    python -m tinygraph export-onnx MODULE:FUNCTION|EXAMPLE -o graph.onnx
        Writes the graph and its generated gradient graph as an ONNX model.
"""
import argparse
import importlib
import pathlib
import shutil
import sys

import numpy as np

from . import examples, grad, nodes, simplify, tensor
from .arguments import ArgumentParser, at_least
from .diagrams.dot import VIEWS, GraphvizNotFoundError, save
from .diagrams.explorer import explore
from .diagrams.diff import VARIANTS, explore_diff
from .core.tensor import Parameter, Tensor


class CommandError(Exception):
    """A problem with the command line's input: reported in one line, exit status 2."""


def demo(args):
    """`demo`: one LSTM cell step, its gradients, its backward nodes, and the diagrams."""
    inputs, (h, c) = examples.lstm_cell_step(batch=args.batch, input_size=args.input_size,
                                             hidden_size=args.hidden_size, seed=args.seed)
    np.set_printoptions(precision=4, suppress=True, linewidth=100)
    print("One LSTM cell step built from primitives: A = x@Wx + h_prev@Wh + b, sliced into "
          "gates f, g, i, o;\nc = f*c_prev + g*i; h = o*tanh(c).  Upstream gradients "
          "dL/dh = dL/dc = 1 (inputs of the backward graph).\n")
    print(f"h =\n{h.data}\nc =\n{c.data}\n")

    names = list(inputs)
    seeds = [tensor(np.ones(h.shape), name="∂L/∂h"), tensor(np.ones(c.shape), name="∂L/∂c")]
    grads = grad([h, c], [inputs[n] for n in names], grad_outputs=seeds, create_graph=True)
    for name, g in zip(names, grads):
        print(f"dL/d{name} {g.shape} =\n{g.data}")

    forward = nodes([h, c])
    backward_nodes = [n for n in nodes(grads) if n.is_backward]
    print(f"\nForward graph: {len(forward)} op nodes. Generated backward graph: "
          f"{len(backward_nodes)} op nodes:")
    for k, node in enumerate(backward_nodes):
        shapes = ", ".join(str(t.shape) for t in node.inputs)
        origin = (f"vjp of {node.forward_node.op}" if node.forward_node is not None
                  else "sum of the gradients of a tensor used twice")
        of = f" -> dL/d{node.grad_of.name}" if node.grad_of is not None and node.grad_of.name else ""
        print(f"  {k:3d}  {node.op:<12} ({shapes}) -> {node.output.shape}   [{origin}{of}]")
    print(f"\nSimplified: {simplify(grads)}")
    if args.out:
        _draw_demo(pathlib.Path(args.out), [h, c])
    return 0


def _draw_demo(out_dir, outputs):
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = "svg" if shutil.which("dot") else "dot"
    drawings = {
        "lstm_cell_forward": dict(view="forward"),
        "lstm_cell_backward": dict(view="backward"),
        "lstm_cell_backward_generated": dict(view="backward", simplify=False),
        "lstm_cell_both": dict(view="both"),
    }
    print(f"\nDiagrams of the cell (∂L/∂h and ∂L/∂c as the upstream gradients):")
    for stem, options in drawings.items():
        path = save(outputs, out_dir / f"{stem}.{suffix}", **options)
        print(f"  {path}")
    if suffix == "dot":
        print("  (DOT text: install Graphviz's 'dot' to get SVG images)")


def render_command(args):
    """`render`: draw an example or a function's output tensors to a file."""
    if args.list:
        width = max(map(len, examples.EXAMPLES))
        for name, fn in examples.EXAMPLES.items():
            print(f"{name:<{width}}  {fn.__doc__}")
            print(f"{'':<{width}}    {_parameter_list(name)}")
        return 0
    if not args.target:
        raise CommandError("render needs a target: MODULE:FUNCTION or an example name (see "
                           "--list)")
    if not args.output:
        raise CommandError("render needs -o OUTPUT, a .svg, .png, .pdf or .dot file")
    outputs = _call_target(args.target, "render", args)
    path = save(outputs, args.output, view=args.view, simplify=not args.no_simplify,
                color_by=args.color_by, collapse=True if args.collapse_all else args.collapse,
                title=args.title)
    print(path)
    return 0


def explore_command(args):
    """`explore`: write the interactive explorer page of an example or a function's output."""
    if not args.output.lower().endswith((".html", ".htm")):
        raise CommandError(f"explore writes an .html file, got -o {args.output}")
    outputs = _call_target(args.target, "explore", args)
    given = ", ".join(f"{name}={text}" for name, text in _given_parameters(args).items())
    page = explore(outputs, view=args.view, simplify=not args.no_simplify,
                   collapse=True if args.collapse_all else args.collapse,
                   title=args.title or f"tinygraph explorer: {args.target}"
                                       + (f" ({given})" if given else ""))
    path = page.save(args.output)
    print(path)
    return 0


def diff_command(args):
    """`diff`: write the page comparing two graphs' backward graphs, nodes matched."""
    if not args.output.lower().endswith((".html", ".htm")):
        raise CommandError(f"diff writes an .html file, got -o {args.output}")
    targets = (args.a, args.b)
    for name in _given_parameters(args):
        if not any(name in _parameters_of(target) for target in targets):
            _call_target(args.a, "diff", args)    # raises: A does not take it (nor does B)
    first = _call_target(args.a, "diff", _for_target(args, args.a))
    # One graph in two variants: build it once, so both sides share its forward graph.
    second = first if args.b == args.a else _call_target(args.b, "diff",
                                                         _for_target(args, args.b))
    page = explore_diff(first, second, labels=targets, view=args.view,
                        variants=(args.a_variant, args.b_variant), title=args.title)
    print(page.save(args.output))
    return 0


def _parameters_of(target):
    return examples.parameters(target) if target in examples.EXAMPLES else {}


def _for_target(args, target):
    """args with only the example parameters that `target` takes (a diff's options apply to
    each side that takes them)."""
    kept = _parameters_of(target)
    return argparse.Namespace(**{key: None if key.startswith("example_")
                                 and key[len("example_"):] not in kept else value
                                 for key, value in vars(args).items()})


def export_onnx_command(args):
    """`export-onnx`: write an example's or a function's graph (and its gradients) as ONNX."""
    from .transforms.onnx_export import export_onnx
    outputs = _call_target(args.target, "export-onnx", args)
    leaves = [t for node in nodes(outputs) for t in node.inputs if t._node is None]
    # Inputs: the leaves that require grad and are not Parameters (x, h_prev, ...); the
    # Parameters and constants are written as initializers with their current values.
    inputs = list({id(t): t for t in leaves
                   if t.requires_grad and not isinstance(t, Parameter)}.values())
    exported = list(outputs)
    if args.view != "forward":
        wrt = list({id(t): t for t in leaves if t.requires_grad}.values())
        total = outputs[0].sum() if len(outputs) == 1 else sum(o.sum() for o in outputs)
        grads = grad(total, wrt, create_graph=True)
        exported = (exported if args.view == "both" else []) + list(grads)
    model = export_onnx(exported, inputs, args.output, dynamic_batch=args.dynamic_batch)
    print(f"{args.output}: {len(model.graph.node)} ONNX nodes, inputs "
          f"{', '.join(i.name for i in model.graph.input) or 'none'}, outputs "
          f"{', '.join(o.name for o in model.graph.output)}")
    return 0


def _option(name):
    return "--" + name.replace("_", "-")


def _parameter_list(example):
    """`--steps 3  --batch 2 ...`: an example's options with their defaults."""
    return "  ".join(f"{_option(name)} {default!r}"
                     for name, default in examples.parameters(example).items())


def _add_example_options(parser):
    """One option per parameter of the built-in examples (their union), read from the
    examples' signatures; which example takes which is checked once the target is known."""
    takers = {}     # {name: {default: [examples]}}
    for example in examples.EXAMPLES:
        for name, default in examples.parameters(example).items():
            takers.setdefault(name, {}).setdefault(default, []).append(example)
    group = parser.add_argument_group(
        "built-in example parameters", "set a parameter of the example drawn (render --list "
        "shows which example takes which, with the defaults)")
    for name, defaults in takers.items():
        group.add_argument(_option(name), dest=f"example_{name}", metavar="VALUE",
                           help="; ".join(f"{', '.join(names)}: default {default!r}"
                                          for default, names in defaults.items()))


def _given_parameters(args):
    """The example parameters given on the command line, as text: {name: text}."""
    prefix = "example_"
    return {key[len(prefix):]: value for key, value in vars(args).items()
            if key.startswith(prefix) and value is not None}


def _example_arguments(example, given):
    """The keyword arguments for `example` from the options given (text), converted to the
    type of each parameter's default; CommandError naming the example and its parameters
    for an option it does not take or a value that is not of that type."""
    declared = examples.parameters(example)
    listing = f"{example}'s parameters (defaults): {_parameter_list(example) or 'none'}"
    kwargs = {}
    for name, text in given.items():
        if name not in declared:
            raise CommandError(f"{example} has no parameter {_option(name)}; {listing}")
        kind = type(declared[name])
        try:
            kwargs[name] = kind(text)
        except ValueError:
            word = "an integer" if kind is int else "a number"
            raise CommandError(f"{example}: {_option(name)} must be {word}, got {text!r}; "
                               f"{listing}") from None
    return kwargs, listing


def _call_target(target, command, args=None):
    """The output tensors of an example (with the parameters given in `args`) or a
    MODULE:FUNCTION, for `command`'s errors."""
    if not target:
        raise CommandError(f"{command} needs a target: MODULE:FUNCTION or an example name (see "
                           "render --list)")
    given = _given_parameters(args) if args is not None else {}
    kwargs, listing = {}, None
    if target in examples.EXAMPLES:
        fn = examples.EXAMPLES[target]
        kwargs, listing = _example_arguments(target, given)
    elif given:
        options = ", ".join(_option(name) for name in given)
        raise CommandError(f"{options}: example parameters apply to the built-in examples "
                           f"({', '.join(examples.EXAMPLES)}), not to {target}")
    elif ":" in target:
        module_name, _, attr = target.partition(":")
        sys.path.insert(0, str(pathlib.Path.cwd()))
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            raise CommandError(f"cannot import module {module_name!r}: {e}") from None
        fn = getattr(module, attr, None)
        if not callable(fn):
            raise CommandError(f"module {module_name!r} has no function {attr!r}")
    else:
        raise CommandError(f"unknown example {target!r}; use MODULE:FUNCTION or one of "
                           f"{', '.join(examples.EXAMPLES)}")
    try:
        result = fn(**kwargs)
    except examples.ExampleParameterError as e:
        if listing is None:     # a MODULE:FUNCTION that calls an example: its own ValueError
            raise
        raise CommandError(f"{target}: {_option(e.parameter)} must be {e.requirement}, got "
                           f"{given.get(e.parameter, e.value)!r}; {listing}") from None
    outputs = [result] if isinstance(result, Tensor) else result
    if not isinstance(outputs, (list, tuple)) or not outputs or not all(
            isinstance(t, Tensor) for t in outputs):
        raise CommandError(f"{target} must return a Tensor or a list/tuple of Tensors, got "
                           f"{type(result).__name__}")
    return list(outputs)


def main(argv=None):
    """Run the command line with `argv` (default: sys.argv); returns the exit status."""
    parser = ArgumentParser(prog="python -m tinygraph",
                                     description="tinygraph: autodiff whose backward pass is a graph")
    parser.add_argument("--traceback", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="one LSTM cell step: outputs, gradients, backward nodes, diagrams")
    p.add_argument("--batch", type=at_least(1), default=2)
    p.add_argument("--input-size", type=at_least(1), default=3)
    p.add_argument("--hidden-size", type=at_least(1), default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="tinygraph-demo",
                   help="folder for the diagrams (default: %(default)s; '' to skip)")
    p.set_defaults(run=demo)

    p = sub.add_parser("render", help="draw the graph of a function's output tensors")
    p.add_argument("target", nargs="?", help="MODULE:FUNCTION, or a built-in example name")
    p.add_argument("-o", "--output", help="output file: .svg, .png, .pdf or .dot")
    p.add_argument("--view", choices=VIEWS, default="both")
    p.add_argument("--no-simplify", action="store_true",
                   help="draw the backward graph as generated, without the rewrite passes")
    p.add_argument("--color-by", choices=["grad_norm"], help="colour nodes by gradient norm")
    p.add_argument("--collapse", action="append", default=[], metavar="SCOPE",
                   help="draw this scope's cluster as one box (repeatable)")
    p.add_argument("--collapse-all", action="store_true", help="collapse every scope")
    p.add_argument("--title", help="caption above the diagram")
    p.add_argument("--list", action="store_true",
                   help="list the built-in examples with their parameters")
    _add_example_options(p)
    p.set_defaults(run=render_command)

    p = sub.add_parser("explore", help="write the interactive explorer page of a graph (.html)")
    p.add_argument("target", nargs="?", help="MODULE:FUNCTION, or a built-in example name")
    p.add_argument("-o", "--output", default="explorer.html",
                   help="the .html file to write (default: %(default)s)")
    p.add_argument("--view", choices=VIEWS, default="backward",
                   help="the view it opens with (default: %(default)s)")
    p.add_argument("--no-simplify", action="store_true",
                   help="open on the backward graph as generated (both are in the page)")
    p.add_argument("--collapse", action="append", default=[], metavar="SCOPE",
                   help="open with this scope collapsed (repeatable)")
    p.add_argument("--collapse-all", action="store_true", help="open with every scope collapsed")
    p.add_argument("--title", help="the page's title")
    _add_example_options(p)
    p.set_defaults(run=explore_command)

    p = sub.add_parser("diff", help="write a page comparing two backward graphs, their nodes "
                                    "matched (.html)")
    p.add_argument("a", metavar="A", help="MODULE:FUNCTION, or a built-in example name")
    p.add_argument("b", metavar="B", help="the graph to compare it with (may be A again, in "
                                          "another variant)")
    p.add_argument("-o", "--output", default="diff.html",
                   help="the .html file to write (default: %(default)s)")
    p.add_argument("--a-variant", choices=VARIANTS, default="simplified",
                   help="A's backward graph as generated or simplified (default: %(default)s)")
    p.add_argument("--b-variant", choices=VARIANTS, default="simplified",
                   help="B's backward graph as generated or simplified (default: %(default)s)")
    p.add_argument("--view", choices=VIEWS, default="backward",
                   help="what each side draws (default: %(default)s)")
    p.add_argument("--title", help="the page's title")
    _add_example_options(p)
    p.set_defaults(run=diff_command)

    p = sub.add_parser("export-onnx", help="write a graph and its generated gradient graph as "
                                           "ONNX (.onnx)")
    p.add_argument("target", nargs="?", help="MODULE:FUNCTION, or a built-in example name")
    p.add_argument("-o", "--output", default="graph.onnx",
                   help="the .onnx file to write (default: %(default)s)")
    p.add_argument("--view", choices=VIEWS, default="both",
                   help="forward: the outputs; backward: the gradients of their sum with "
                        "respect to every leaf that requires grad; both (default)")
    p.add_argument("--dynamic-batch", action="store_true",
                   help="a symbolic first axis for the inputs, where shapes allow it")
    _add_example_options(p)
    p.set_defaults(run=export_onnx_command)

    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except CommandError as e:
        if args.traceback:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (GraphvizNotFoundError, ValueError, TypeError, OSError, ImportError) as e:
        if args.traceback:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
