"""The layering of tinygraph, read from the imports (ast) of every module under tinygraph/:

    core (and backend)  <-  ops  <-  transforms, nn, optim, data  <-  diagrams  <-  examples, cli,
    __main__ (and the package's __init__, the public facade)

A module may import tinygraph modules of its own layer or a lower one, never a higher one;
tinygraph never imports lstm (the models are built on tinygraph, not the other way round).
Every import counts, including those inside functions.
"""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "tinygraph"

LAYERS = [
    ("core", ["tinygraph.core", "tinygraph.backend"]),
    ("ops", ["tinygraph.ops"]),
    ("transforms/nn/optim/data", ["tinygraph.transforms", "tinygraph.nn", "tinygraph.optim",
                                  "tinygraph.data"]),
    ("diagrams", ["tinygraph.diagrams"]),
    ("entry points", ["tinygraph.examples", "tinygraph.arguments", "tinygraph.__main__",
                      "tinygraph"]),
]
FORBIDDEN = ["lstm"]      # packages tinygraph must never import


def layer_of(module):
    """(index, name) of the layer `module` (a dotted name under tinygraph) belongs to: the one
    with the longest matching prefix (the package itself, "tinygraph", only matches itself);
    None for a module no layer claims."""
    best = None
    for index, (name, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or ("." in prefix and module.startswith(prefix + ".")):
                if best is None or len(prefix) > best[0]:
                    best = (len(prefix), index, name)
    return None if best is None else best[1:]


def module_name(path, package_root):
    parts = list(path.relative_to(package_root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(module, source, is_package=False, exists=lambda name: False):
    """The dotted names `source` (the text of `module`) imports, relative imports resolved.

    `from X import name` counts as X.name when that is a module (`exists`), else as X.
    """
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                # A package's own name is its first level; a module's is its parent.
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            found += [f"{target}.{alias.name}" if exists(f"{target}.{alias.name}") else target
                      for alias in node.names]
    return found


def violations(modules, exists=lambda name: False):
    """The layering errors of `modules`, a dict of dotted name -> (source, is_package)."""
    errors = []
    for module, (source, is_package) in sorted(modules.items()):
        own = layer_of(module)
        if own is None:
            errors.append(f"{module}: in no layer (add it to LAYERS)")
            continue
        for target in imported_modules(module, source, is_package, exists):
            top = target.split(".")[0]
            if top in FORBIDDEN:
                errors.append(f"{module} imports {target}: tinygraph never imports {top}")
            elif top == "tinygraph":
                theirs = layer_of(target)
                if theirs is None:
                    errors.append(f"{module} imports {target}, which is in no layer")
                elif theirs[0] > own[0]:
                    errors.append(f"{module} ({own[1]}) imports {target} ({theirs[1]}), a "
                                  "higher layer")
    return errors


def tinygraph_modules(package=PACKAGE):
    return {module_name(path, package): (path.read_text(encoding="utf-8"),
                                         path.name == "__init__.py")
            for path in sorted(package.rglob("*.py"))}


def module_exists(name, package=PACKAGE):
    parts = name.split(".")
    if parts[0] != package.name:
        return False
    path = package.parent.joinpath(*parts)
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def test_tinygraph_imports_follow_the_layers():
    modules = tinygraph_modules()
    assert "tinygraph.core.primitive" in modules and "tinygraph.examples" in modules
    assert violations(modules, module_exists) == []


# --- the checker itself, on synthetic modules -------------------------------------------------

def _known(name):
    return name in {"tinygraph.ops.shape", "tinygraph.core.tensor", "tinygraph.diagrams.dot",
                    "tinygraph.examples", "tinygraph.nn"}


@pytest.mark.parametrize("module, source, is_package, bad", [
    ("tinygraph.core.tensor", "from ..ops import add", False, "higher layer"),
    ("tinygraph.core.tensor", "import tinygraph.ops.shape", False, "higher layer"),
    ("tinygraph.core", "from ..diagrams import dot", True, "higher layer"),
    ("tinygraph.ops.shape", "def f():\n    from ..transforms import compile", False,
     "higher layer"),
    ("tinygraph.nn", "from .diagrams.dot import render", False, "higher layer"),
    ("tinygraph.diagrams.dot", "from .. import examples", False, "higher layer"),
    ("tinygraph.core.tensor", "import tinygraph", False, "higher layer"),
    ("tinygraph.examples", "from lstm.cells import LSTMCell", False, "never imports lstm"),
    ("tinygraph.arguments", "import lstm", False, "never imports lstm"),
    ("tinygraph.newthing", "import numpy", False, "in no layer"),
    # allowed: same layer, lower layers, outside packages
    ("tinygraph.nn", "from .optim import SGD\nfrom .ops import add", False, None),
    ("tinygraph.ops.shape", "from ..core.tensor import Tensor\nfrom . import shape", False,
     None),
    ("tinygraph.diagrams", "from .dot import render\nfrom ..nn import Linear", True, None),
    ("tinygraph.examples", "from .nn import Linear\nimport numpy as np", False, None),
    ("tinygraph", "from .arguments import main\nfrom . import ops", True, None),
])
def test_the_checker_catches_a_bad_import(module, source, is_package, bad):
    errors = violations({module: (source, is_package)}, _known)
    if bad is None:
        assert errors == []
    else:
        assert len(errors) == 1 and bad in errors[0], errors


def test_the_checker_catches_a_bad_import_in_a_copy_of_the_tree(tmp_path):
    """The real tree with one bad import added to a copy of core/tensor.py fails."""
    import shutil
    copy = tmp_path / "tinygraph"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    tensor = copy / "core" / "tensor.py"
    tensor.write_text(tensor.read_text() + "\n\ndef _late():\n    from ..ops import add\n")
    errors = violations(tinygraph_modules(copy), lambda name: module_exists(name, copy))
    assert errors == ["tinygraph.core.tensor (core) imports tinygraph.ops (ops), a higher "
                      "layer"]


# --- the core names no transform ---------------------------------------------------------------

# Words that name a transform or what only one transform has (a compiled step's trace and
# program, detect_anomaly, the rewrites, ONNX, threading): the core reaches them through the
# interpreter in force (tinygraph.core.interpreter), never by name. (The fast backward pass's
# lazy terms are the core's own.)
TRANSFORM_WORDS = {"trace", "traced", "tracing", "compile", "compiled", "anomaly", "onnx",
                   "gradcheck", "rewrite", "simplify", "program", "split"}


def core_identifiers(source):
    """Every name the code of a module uses or defines (not its strings or comments)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.keyword) and node.arg:
            names.add(node.arg)
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).split(".")[-1])
    return names


def transform_names(source):
    words = lambda name: {w.lower() for w in name.strip("_").split("_") if w}
    return sorted(n for n in core_identifiers(source) if words(n) & TRANSFORM_WORDS)


def test_no_core_module_names_a_transform():
    core = {m: s for m, (s, _) in tinygraph_modules().items() if m.startswith("tinygraph.core")}
    assert "tinygraph.core.interpreter" in core
    assert {m: transform_names(s) for m, s in core.items() if transform_names(s)} == {}


def test_the_transform_name_check_can_fail():
    assert transform_names("def f(state):\n    return state.trace") == ["trace"]
    assert transform_names("x = current().split_products") == ["split_products"]
    assert transform_names('msg = "a compiled step\'s trace"  # the program') == []


def test_a_renamed_name_says_what_it_became():
    import tinygraph as tg
    with pytest.raises(AttributeError, match="renamed tg.heaviside"):
        tg.step
    assert tg.heaviside(tg.tensor([-1.0, 2.0])).data.tolist() == [0.0, 1.0]
    with pytest.raises(AttributeError, match="renamed tg.eager_step"):
        tg.value_and_grad
