"""Sphinx extension: every diagram and figure in the docs is drawn at build time by tinygraph.

Directives (usable from MyST Markdown as ```{name} fences):

``tinygraph-diagram [EXAMPLE | MODULE:FUNCTION]``
    Draws a graph with tinygraph's own renderer (`tinygraph.render`, piped through Graphviz
    by `tinygraph.diagrams.dot.pipe`). The graph is either a built-in example
    (`tinygraph.examples.EXAMPLES`), a function returning tensors, or the directive's body: Python
    code that assigns the tensors to draw to ``outputs`` (and may assign ``wrt`` and
    ``grad_outputs``). Options: ``:view:`` forward/backward/both, ``:no-simplify:``,
    ``:collapse:`` (scope names), ``:collapse-all:``, ``:color-by: grad_norm``, ``:title:``,
    ``:show-code:`` (print the body above the drawing), ``:caption:``, ``:alt:``, ``:name:``.
    ``:focus:`` draws a crop instead: the gradient nodes named (``t=3/c2``: the gradient of c2
    made in scope t=3; ``Wh``: one outside every scope), drawn bold, with their neighbours up
    to ``:focus-depth:`` edges away (default 1); see `tinygraph.diagrams.crop.crop_dot`.

``tinygraph-vanishing``
    The vanishing-gradient figure of ``python -m lstm vanishing``: `lstm.vanishing.compare`
    measures ‖∂L/∂x_t‖ against the distance from the loss and `lstm.plots.vanishing_figure`
    plots it; a table of the measured norms follows. Options: ``:cells:``, ``:steps:``,
    ``:hidden-size:``, ``:forget-bias:``, ``:distances:``, ``:caption:``, ``:name:``.

``tinygraph-state-norms``
    ‖∂L/∂c_t‖ and ‖∂L/∂h_t‖ per time step of the built-in ``lstm_unrolled`` example, one panel
    per forget-gate bias. Options: ``:steps:``, ``:forget-biases:``, ``:caption:``, ``:alt:``,
    ``:name:``.

``tinygraph-attention``
    Trains a small attention seq2seq model on the date task and draws its attention weights
    on held-out questions (`lstm.plots.attention_figure`), with the measured accuracy in the
    caption. Options: ``:examples:``, ``:epochs:``, ``:hidden-size:``, ``:lr:``, ``:show:``,
    ``:caption:``, ``:alt:``, ``:name:``.

``tinygraph-benchmark-chart FILE``
    A bar chart of the per-step time ratios that `benchmarks/lm_step.py` wrote into FILE
    (JSON, beside the page). Options: ``:caption:``, ``:alt:``, ``:name:``.

``tinygraph-memory-timeline``
    The memory timeline of the backward pass (`tinygraph.saved_values`) of one eager step of
    an LSTM regressor unrolled over ``:steps:`` time steps, once per ``:every:`` setting
    (``none`` for no checkpointing, or the steps per checkpointed segment), as one figure.
    Options: ``:steps:``, ``:hidden-size:``, ``:every:``, ``:caption:``, ``:alt:``, ``:name:``.

``tinygraph-command``
    Runs ``python -m ...`` (the argument) in the repository and shows the command and what it
    printed, e.g. a command's ``--help``.

``tinygraph-ops-table``
    The table of every public op function: what it computes, primitive or composed (found by
    recording it on the example inputs of ``docs/_ext/ops_reference.py``) and its vjp rule.

The graphs and measurements are computed when a page is read; the images are written when it
is written (into the output's ``_images/``, named by a hash of their content), like
``sphinx.ext.graphviz``, so no image file is kept in the repository and none can go stale.
Every page that uses a directive depends on the sources of tinygraph and lstm: changing them
makes an incremental build re-read the page.
"""
import hashlib
import html
import inspect
import os
import pathlib
import re
import shlex
import subprocess
import sys
import tempfile
import traceback

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

import ops_reference

ROOT = pathlib.Path(__file__).resolve().parents[2]
logger = logging.getLogger(__name__)


class tinygraph_image(nodes.General, nodes.Inline, nodes.Element):
    """An image drawn at write time: ``kind`` is "dot" (``source`` holds DOT text),
    "vanishing" (``norms`` holds the measured gradient norms per cell), "attention"
    (``examples`` holds (question, answer, weights) triples), "ratios" (``steps``) or
    "state-norms" (``panels`` holds (forget bias, ‖∂L/∂c_t‖ list, ‖∂L/∂h_t‖ list))."""


def _package_sources():
    return sorted(str(p) for package in ("tinygraph", "lstm")
                  for p in (ROOT / package).glob("*.py"))


class _Base(SphinxDirective):
    def note_sources(self):
        for path in _package_sources():
            self.env.note_dependency(path)

    def figure(self, image, default_alt):
        caption = self.options.get("caption")
        # Without an explicit :alt:, the caption (its Markdown links reduced to their text)
        # describes the image best.
        image["alt"] = self.options.get("alt") or (
            re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", caption) if caption else default_alt)
        figure = nodes.figure("", image, classes=["tinygraph-figure"])
        caption = self.options.get("caption")
        if caption:
            parsed, messages = self.state.inline_text(caption, self.lineno)
            figure += nodes.caption(caption, "", *parsed)
        else:
            messages = []
        self.add_name(figure)
        return figure, messages


class DiagramDirective(_Base):
    optional_arguments = 1
    has_content = True
    option_spec = {
        "view": lambda value: directives.choice(value, ("forward", "backward", "both")),
        "no-simplify": directives.flag,
        "collapse": directives.unchanged,
        "collapse-all": directives.flag,
        "color-by": lambda value: directives.choice(value, ("grad_norm",)),
        "title": directives.unchanged,
        "show-code": directives.flag,
        "caption": directives.unchanged,
        "alt": directives.unchanged,
        "name": directives.unchanged,
        "focus": directives.unchanged,
        "focus-depth": directives.nonnegative_int,
    }

    def run(self):
        self.note_sources()
        try:
            outputs, extra = self._outputs()
            import tinygraph as tg

            collapse = True if "collapse-all" in self.options else \
                self.options.get("collapse", "").replace(",", " ").split()
            if "focus" in self.options:
                from tinygraph.diagrams.crop import crop_dot
                dot = crop_dot(outputs, self.options["focus"].replace(",", " ").split(),
                                  depth=self.options.get("focus-depth", 1),
                                  view=self.options.get("view", "backward"),
                                  simplify="no-simplify" not in self.options,
                                  title=self.options.get("title"), **extra)
            else:
                dot = tg.to_dot(outputs, view=self.options.get("view", "both"),
                                simplify="no-simplify" not in self.options,
                                color_by=self.options.get("color-by"), collapse=collapse,
                                title=self.options.get("title"), **extra)
        except Exception:
            raise self.error(f"tinygraph-diagram: drawing failed:\n{traceback.format_exc()}")
        result = []
        if "show-code" in self.options and self.content:
            code = "\n".join(self.content)
            block = nodes.literal_block(code, code, language="python")
            self.set_source_info(block)
            result.append(block)
        image = tinygraph_image(kind="dot", source=dot)
        what = self.arguments[0] if self.arguments else "graph"
        figure, messages = self.figure(
            image, f"{self.options.get('view', 'both')} view of the {what} drawn by tinygraph")
        return result + [figure] + messages

    def _outputs(self):
        """The tensors to draw, and the render options the code chose (wrt, grad_outputs)."""
        from tinygraph import Tensor
        from tinygraph.examples import EXAMPLES

        extra = {}
        if self.arguments:
            if self.content:
                raise ValueError("give an example name or a code body, not both")
            target = self.arguments[0]
            if target in EXAMPLES:
                result = EXAMPLES[target]()
            else:
                module, _, function = target.partition(":")
                result = getattr(__import__(module, fromlist=[function]), function)()
        else:
            if not self.content:
                raise ValueError("needs an example name or a code body assigning `outputs`")
            namespace = {"__name__": f"docs_{self.env.docname.replace('-', '_')}"}
            code = compile("\n".join(self.content),
                           f"<{self.env.docname}.md, line {self.content_offset + 1}>", "exec")
            exec(code, namespace)
            if "outputs" not in namespace:
                raise ValueError("the code must assign the tensors to draw to `outputs`")
            result = namespace["outputs"]
            extra = {k: namespace[k] for k in ("wrt", "grad_outputs") if k in namespace}
        if isinstance(result, Tensor):
            result = [result]
        return list(result), extra


class ExplorerDirective(DiagramDirective):
    """``tinygraph-explorer [EXAMPLE | MODULE:FUNCTION]`` (or a code body, as for diagrams):
    a live explorer (`tinygraph.explore`), written at build time next to the pages as one
    self-contained HTML file and shown in an iframe. Options: ``:view:``, ``:no-simplify:``,
    ``:collapse:``, ``:title:``, ``:height:`` (pixels), ``:caption:``, ``:name:``,
    ``:print-fallback:`` (also the static diagram, shown instead of the explorer on paper;
    with ``:show-code:``, the code above both)."""

    option_spec = {**DiagramDirective.option_spec, "height": directives.positive_int,
                   "print-fallback": directives.flag}

    def run(self):
        result = self._explorer()
        if "print-fallback" not in self.options:
            return result
        # On screen the explorer; on paper (where an iframe prints as an empty box) the same
        # graph as a static picture, with the code if :show-code: asked for it.
        screen = nodes.container("", *result, classes=["tinygraph-screen-only"])
        paper = nodes.container("", *DiagramDirective.run(self),
                                classes=["tinygraph-print-only"])
        code = [n for n in paper.children if isinstance(n, nodes.literal_block)]
        for block in code:              # the code shows on screen too, above the explorer
            paper.remove(block)
        return code + [screen, paper]

    def _explorer(self):
        self.note_sources()
        try:
            outputs, extra = self._outputs()
            import tinygraph as tg

            page = tg.explore(outputs, view=self.options.get("view", "backward"),
                              simplify="no-simplify" not in self.options,
                              collapse=self.options.get("collapse", "").replace(",", " ").split(),
                              title=self.options.get("title"), **extra)
        except Exception:
            raise self.error(f"tinygraph-explorer: building failed:\n{traceback.format_exc()}")
        serial = self.env.new_serialno("tinygraph-explorer")
        name = f"{self.env.docname.replace('/', '-')}-{serial}.html"
        folder = pathlib.Path(self.env.app.outdir) / "_explorers"
        folder.mkdir(parents=True, exist_ok=True)
        page.save(folder / name)
        height = self.options.get("height", 640)
        up = "../" * self.env.docname.count("/")       # the page's folder -> the output's root
        title = html.escape(self.options.get("caption") or "tinygraph explorer", quote=True)
        frame = nodes.raw("", f'<iframe class="tinygraph-explorer" src="{up}_explorers/{name}" '
                              f'title="{title}" style="width:100%;height:{height}px;border:1px '
                              f'solid #ccc" loading="lazy"></iframe>'
                              f'<p><a href="{up}_explorers/{name}">Open this explorer on a page of '
                              f'its own</a></p>', format="html")
        result = [frame]
        caption = self.options.get("caption")
        if caption:
            parsed, messages = self.state.inline_text(caption, self.lineno)
            result.append(nodes.paragraph(caption, "", *parsed, classes=["caption"]))
            result += messages
        return result


class VanishingDirective(_Base):
    has_content = False
    option_spec = {
        "cells": directives.unchanged,
        "steps": directives.positive_int,
        "hidden-size": directives.positive_int,
        "forget-bias": float,
        "distances": directives.unchanged,
        "caption": directives.unchanged,
        "alt": directives.unchanged,
        "name": directives.unchanged,
    }

    def run(self):
        self.note_sources()
        cells = tuple(self.options.get("cells", "rnn lstm").replace(",", " ").split())
        steps = self.options.get("steps", 100)
        hidden = self.options.get("hidden-size", 32)
        forget_bias = self.options.get("forget-bias", 1.0)
        try:
            from lstm import vanishing

            norms = vanishing.compare(cells, hidden_size=hidden, steps=steps,
                                      forget_bias=forget_bias)
        except Exception:
            raise self.error(f"tinygraph-vanishing: failed:\n{traceback.format_exc()}")
        image = tinygraph_image(kind="vanishing",
                                norms={c: [float(v) for v in n] for c, n in norms.items()},
                                title="‖∂L/∂x_t‖ against distance from the loss\n"
                                      f"(untrained cells, random inputs; LSTM forget-gate "
                                      f"bias {forget_bias:g})")
        figure, messages = self.figure(
            image, "gradient norm against distance from the loss, log scale, for "
                   + ", ".join(c.upper() for c in cells))
        default = [0, 1, 5, 10, 25, 50, 75, steps - 1]
        distances = [int(d) for d in self.options.get("distances", "").replace(",", " ").split()] \
            or default
        return [figure, self._table(norms, cells, sorted(d for d in set(distances) if d < steps))] \
            + messages

    @staticmethod
    def _table(norms, cells, distances):
        header = ["distance"] + [f"‖∂L/∂x‖ {c.upper()}" for c in cells]
        rows = [[str(d)] + [f"{norms[c][d]:.1e}" for c in cells] for d in distances]
        table = nodes.table(classes=["tinygraph-norms"])
        group = nodes.tgroup(cols=len(header))
        table += group
        for _ in header:
            group += nodes.colspec(colwidth=1)

        def row(cells_text):
            r = nodes.row()
            for text in cells_text:
                r += nodes.entry("", nodes.paragraph(text=text))
            return r

        group += nodes.thead("", row(header))
        body = nodes.tbody()
        for values in rows:
            body += row(values)
        group += body
        return table


def state_gradient_norms(steps, forget_bias):
    """‖∂L/∂c_t‖ and ‖∂L/∂h_t‖ for t = 1..steps in the built-in `lstm_unrolled` example
    (L = sum of the last h): two lists, from one backward pass."""
    import tinygraph as tg
    from tinygraph.examples import lstm_unrolled
    from tinygraph.diagrams.picture import norm

    _, loss = lstm_unrolled(steps=steps, forget_bias=forget_bias)
    states = {n.output.name: n.output for n in tg.nodes(loss) if not n.is_backward}
    cs = [states[f"c{t}"] for t in range(1, steps + 1)]
    hs = [states[f"h{t}"] for t in range(1, steps + 1)]
    grads = tg.grad(loss, cs + hs)
    return [norm(g.data) for g in grads[:steps]], [norm(g.data) for g in grads[steps:]]


class StateNormsDirective(_Base):
    """``tinygraph-state-norms``: ‖∂L/∂c_t‖ and ‖∂L/∂h_t‖ against t in `lstm_unrolled`, one
    panel per forget-gate bias, measured while the page is built. Options: ``:steps:``,
    ``:forget-biases:`` (e.g. ``0 1``), ``:caption:``, ``:alt:``, ``:name:``."""

    has_content = False
    option_spec = {
        "steps": directives.positive_int,
        "forget-biases": directives.unchanged,
        "caption": directives.unchanged,
        "alt": directives.unchanged,
        "name": directives.unchanged,
    }

    def run(self):
        self.note_sources()
        steps = self.options.get("steps", 20)
        biases = [float(b) for b in
                  self.options.get("forget-biases", "0 1").replace(",", " ").split()]
        try:
            panels = [(bias, *state_gradient_norms(steps, bias)) for bias in biases]
        except Exception:
            raise self.error(f"tinygraph-state-norms: failed:\n{traceback.format_exc()}")
        image = tinygraph_image(kind="state-norms", panels=panels)
        figure, messages = self.figure(
            image, "norms of the gradients of the cell states and hidden states per time step, "
                   "log scale, for forget-gate biases " + ", ".join(f"{b:g}" for b in biases))
        return [figure] + messages


def _state_norms_chart(panels, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels) + 0.6, 3.2),
                             sharey=True, squeeze=False)
    for ax, (bias, c_norms, h_norms) in zip(axes[0], panels):
        t = range(1, len(c_norms) + 1)
        ax.semilogy(t, c_norms, "o-", markersize=3, color="#bf9000", label="‖∂L/∂c_t‖")
        ax.semilogy(t, h_norms, "s--", markersize=3, color="#3d85c6", label="‖∂L/∂h_t‖")
        ax.set_title(f"forget-gate bias {bias:g}")
        ax.set_xlabel("time step t (the loss reads the last)")
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("gradient norm (log scale)")
    axes[0][0].legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


class AttentionDirective(_Base):
    """Trains an attention seq2seq model on the date task (`lstm.seq2seq_train`, reduced
    settings so that the build stays short) and draws its attention weights on held-out
    questions with `lstm.plots.attention_figure`; the caption gets the measured accuracy."""

    has_content = False
    option_spec = {
        "examples": directives.positive_int,
        "epochs": directives.positive_int,
        "hidden-size": directives.positive_int,
        "lr": float,
        "show": directives.positive_int,
        "caption": directives.unchanged,
        "alt": directives.unchanged,
        "name": directives.unchanged,
    }

    def run(self):
        self.note_sources()
        try:
            from lstm.seq2seq_train import Seq2seqTrainer, default_settings

            settings = default_settings(
                "dates", reverse=True, attention=True,
                examples=self.options.get("examples", 50_000), held_out=1_000,
                epochs=self.options.get("epochs", 2),
                hidden_size=self.options.get("hidden-size", 128),
                lr=self.options.get("lr", 0.005))
            with tempfile.TemporaryDirectory() as checkpoints:
                trainer = Seq2seqTrainer(settings, checkpoints, log=lambda *a: None)
                trainer.run(progress=False, checkpoint_every=0)
            examples = trainer.attention_examples(self.options.get("show", 3))
        except Exception:
            raise self.error(f"tinygraph-attention: failed:\n{traceback.format_exc()}")
        accuracy = trainer.history[-1]["accuracy"]
        self.options["caption"] = (self.options.get("caption", "") + f" (Trained while this page "
                                   f"was built: {settings.epochs} epochs on "
                                   f"{len(trainer.train_set):,} examples, hidden size "
                                   f"{settings.hidden_size}, Adam lr {settings.lr:g}; "
                                   f"held-out accuracy {accuracy:.1%}.)").strip()
        image = tinygraph_image(kind="attention", examples=[
            (q, a, [[round(float(v), 4) for v in row] for row in w]) for q, a, w in examples])
        figure, messages = self.figure(image, "attention weights of output characters over "
                                              "input characters")
        return [figure] + messages


class BenchmarkChartDirective(_Base):
    """A bar chart of the ratios benchmarks/lm_step.py wrote into a JSON file beside the
    page (its argument): tinygraph's time per step divided by each PyTorch peer's."""

    required_arguments = 1
    option_spec = {"caption": directives.unchanged, "alt": directives.unchanged,
                   "name": directives.unchanged}

    def run(self):
        import json
        path = pathlib.Path(self.env.srcdir) / self.arguments[0]
        self.env.note_dependency(str(path))
        try:
            steps = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise self.error(f"tinygraph-benchmark-chart: cannot read {path}: {e}")
        image = tinygraph_image(kind="ratios", steps=steps)
        figure, messages = self.figure(image, "tinygraph's time divided by PyTorch's per step")
        return [figure] + messages


def _ratio_chart(steps, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    labels, eager, compiled = [], [], []
    for step in steps:
        for peer, (e, c) in step["ratios"].items():
            labels.append(f"{step['step']}")
            eager.append(e)
            compiled.append(c)
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(labels) + 1.4))
    y = range(len(labels))
    ax.barh([k + 0.2 for k in y], eager, height=0.4, label="eager", color="#e69138")
    ax.barh([k - 0.2 for k in y], compiled, height=0.4, label="compiled", color="#3d85c6")
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_yticks(list(y), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("tinygraph's time / PyTorch's (below 1: tinygraph is faster)")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


class MemoryTimelineDirective(_Base):
    option_spec = {"steps": directives.positive_int, "hidden-size": directives.positive_int,
                   "every": directives.unchanged, "caption": directives.unchanged,
                   "alt": directives.unchanged, "name": directives.unchanged}

    def run(self):
        self.note_sources()
        try:
            panels = memory_timelines(self.options.get("steps", 30),
                                      self.options.get("hidden-size", 64),
                                      self.options.get("every", "none").replace(",", " ").split())
        except Exception:
            raise self.error(f"tinygraph-memory-timeline: failed:\n{traceback.format_exc()}")
        image = tinygraph_image(kind="memory", panels=panels)
        figure, messages = self.figure(image, "memory alive per backward step")
        return [figure] + messages


def memory_timelines(steps, hidden, settings):
    """[(label, timeline in MB, saved values' share in MB, peak step)] per setting."""
    import numpy as np
    import tinygraph as tg
    from lstm.cells import LSTMCell
    from lstm.recurrent import Recurrent
    rng = np.random.default_rng(0)
    xs, ys = rng.standard_normal((8, steps, 4)), rng.standard_normal((8, steps, 1))
    panels = []
    for setting in settings:
        every = None if setting == "none" else int(setting)
        cell = LSTMCell(4, hidden, rng=np.random.default_rng(1), dtype=np.float64)
        readout = tg.nn.Linear(hidden, 1, rng=np.random.default_rng(2), dtype=np.float64)
        hs, _ = Recurrent(cell, checkpoint_every=every)(xs)
        saved = tg.saved_values(tg.mse_loss(readout(hs), ys))
        label = "no checkpointing" if every is None else f"checkpoint_every={every}"
        panels.append((label, [b / 2**20 for b in saved.timeline],
                       [b / 2**20 for b in saved.saved_timeline], saved.peak_step))
    return panels


def _memory_chart(panels, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.4 * len(panels)), sharey=True)
    axes = list(axes) if len(panels) > 1 else [axes]
    for ax, (label, total, saved, peak) in zip(axes, panels):
        x = range(len(total))
        ax.fill_between(x, saved, step="post", alpha=0.5, label="saved values")
        ax.fill_between(x, saved, total, step="post", alpha=0.5,
                        label="pending gradients, recomputation")
        ax.plot([peak], [total[peak]], "v", color="black")
        ax.annotate(f"peak {total[peak]:.2f} MB", (peak, total[peak]),
                    textcoords="offset points", xytext=(4, 4))
        ax.set_title(label, fontsize=10)
        ax.set_ylabel("MB alive")
        ax.set_xlim(0, len(total) - 1)
    axes[0].legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel("backward step (vjps run, last op first)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


class CommandDirective(_Base):
    required_arguments = 1
    final_argument_whitespace = True
    option_spec = {"timeout": directives.positive_int}

    def run(self):
        self.note_sources()
        argv = shlex.split(self.arguments[0])
        if argv[:2] != ["python", "-m"]:
            raise self.error("tinygraph-command: only 'python -m ...' commands are run")
        env = dict(os.environ, COLUMNS="90", OPENBLAS_NUM_THREADS="1", PYTHONIOENCODING="utf-8")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        try:
            done = subprocess.run([sys.executable] + argv[1:], cwd=ROOT, env=env,
                                  capture_output=True, text=True,
                                  timeout=self.options.get("timeout", 120))
        except subprocess.TimeoutExpired:
            raise self.error(f"tinygraph-command: {self.arguments[0]!r} timed out")
        if done.returncode != 0:
            raise self.error(f"tinygraph-command: {self.arguments[0]!r} exited with "
                             f"{done.returncode}:\n{done.stderr}")
        text = f"$ {self.arguments[0]}\n{done.stdout.rstrip()}"
        block = nodes.literal_block(text, text, language="console")
        self.set_source_info(block)
        return [block]


# --- docstrings -----------------------------------------------------------------------------

ITEM = re.compile(r"^(\s*)([A-Za-z_]\w*): (\S.*)$")


def plain_docstring_to_rest(lines, params=()):
    """Turn the project's plain docstring conventions into reST, in place.

    The docstrings are written to be read with `help()`: a paragraph of ``name: text`` lines
    (continuations indented) describes parameters, an ``Attributes:`` header introduces an
    indented block of such lines, ``|x|`` is an absolute value. reST would read the first two
    as broken indentation and the last as a substitution, so: parameter lines (names in
    `params`) become ``:param name:`` fields, attribute lines ``:ivar name:`` fields, ``|``
    outside code is escaped, a bullet list gets the blank line reST needs before it, and an
    indented block after a blank line (an example, as help() shows it) becomes a literal
    block rather than a block quote.
    """
    out, k = [], 0
    params = set(params)
    while k < len(lines):
        line = lines[k]
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        blank_before = not out or not out[-1].strip()
        if stripped == "Attributes:" and k + 1 < len(lines) and ITEM.match(lines[k + 1]) \
                and len(lines[k + 1]) - len(lines[k + 1].lstrip()) > indent:
            k = _fields(lines, k + 1, "ivar", indent, None, out)
            continue
        match = ITEM.match(line)
        if blank_before and match and match.group(2) in params:
            k = _fields(lines, k, "param", indent, params, out)
            continue
        previous = next((p for p in reversed(out) if p.strip()), None)
        previous_indent = len(previous) - len(previous.lstrip()) if previous else 0
        if stripped and blank_before and previous is not None and indent > previous_indent \
                and not previous.rstrip().endswith("::"):
            out[-1:] = ["", " " * previous_indent + "::", ""]
            while k < len(lines) and (not lines[k].strip()
                                      or len(lines[k]) - len(lines[k].lstrip()) > previous_indent):
                out.append(lines[k])
                k += 1
            continue
        if stripped.startswith("- ") and not blank_before:
            previous = out[-1]
            previous_indent = len(previous) - len(previous.lstrip())
            if previous_indent == indent and not previous.strip().startswith("- "):
                out.append("")
        out.append(_escape_bars(line))
        k += 1
    lines[:] = out


def _fields(lines, k, kind, indent, params, out):
    """Emit the ``name: text`` items starting at lines[k] as fields, up to the next blank
    line (or, in an Attributes block, the first line indented less than its items); return
    the index of the first line after them.

    A line that does not start a new item continues the item before it, indented or not:
    a docstring's paragraph of parameters reads that way in help().
    """
    base = len(lines[k]) - len(lines[k].lstrip())

    def is_item(match):
        return match and len(match.group(1)) == base and (params is None
                                                         or match.group(2) in params)

    while k < len(lines) and lines[k].strip() \
            and len(lines[k]) - len(lines[k].lstrip()) >= base:
        match = ITEM.match(lines[k])
        if is_item(match):
            out.append(" " * indent + f":{kind} {match.group(2)}: "
                       + _escape_bars(match.group(3)))
        else:
            out.append(" " * (indent + 4) + _escape_bars(lines[k].strip()))
        k += 1
    if k < len(lines) and lines[k].strip():
        out.append("")          # what follows the fields is a paragraph of its own
    return k


def _escape_bars(line):
    """Escape | outside `code` spans (in docstrings |x| is an absolute value)."""
    parts = line.split("`")
    return "`".join(part.replace("|", "\\|") if k % 2 == 0 else part
                    for k, part in enumerate(parts))


def process_docstring(app, what, name, obj, options, lines):
    params = ()
    if what in ("function", "method", "class", "exception"):
        try:
            params = [p for p in inspect.signature(obj).parameters if p not in ("self", "cls")]
        except (TypeError, ValueError):
            params = ()
    plain_docstring_to_rest(lines, params)


# --- writing the images -----------------------------------------------------------------------

def _image_file(builder, node):
    """Draw the node's image into the output's _images/ (once per content) and return the
    path relative to the page and the absolute path."""
    if node["kind"] == "dot":
        key, suffix = node["source"], "svg"
    elif node["kind"] == "attention":
        key, suffix = repr(node["examples"]), "svg"
    elif node["kind"] == "ratios":
        key, suffix = repr(node["steps"]), "svg"
    elif node["kind"] == "state-norms":
        key, suffix = "state-norms" + repr(node["panels"]), "svg"
    elif node["kind"] == "memory":
        key, suffix = "memory" + repr(node["panels"]), "svg"
    else:
        key, suffix = repr(sorted(node["norms"].items())) + node["title"], "svg"
    name = f"tinygraph-{hashlib.sha1(key.encode()).hexdigest()[:16]}.{suffix}"
    path = pathlib.Path(builder.outdir) / builder.imagedir / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        if node["kind"] == "dot":
            import graphviz
            from tinygraph.diagrams.dot import pipe

            path.write_bytes(pipe(graphviz.Source(node["source"]), "svg"))
        elif node["kind"] == "attention":
            import numpy as np
            from lstm import plots

            plots.attention_figure([(q, a, np.array(w)) for q, a, w in node["examples"]], path)
        elif node["kind"] == "ratios":
            _ratio_chart(node["steps"], path)
        elif node["kind"] == "state-norms":
            _state_norms_chart(node["panels"], path)
        elif node["kind"] == "memory":
            _memory_chart(node["panels"], path)
        else:
            import numpy as np
            from lstm import plots

            plots.vanishing_figure({c: np.array(v) for c, v in node["norms"].items()}, path,
                                   title=node["title"])
    return f"{builder.imgpath}/{name}", path


# Wider than this (CSS px) and the page shows a diagram scaled down: say it opens full size.
SCALED_DOWN_WIDTH = 720


def _width_px(path):
    """The width an SVG asks for, in CSS pixels (Graphviz and matplotlib write pt)."""
    match = re.search(r'<svg[^>]*?\swidth="([\d.]+)(pt|px)?"', path.read_text(errors="replace"))
    if not match:
        return 0.0
    return float(match.group(1)) * (4 / 3 if match.group(2) == "pt" else 1)


def visit_image_html(self, node):
    try:
        relative, path = _image_file(self.builder, node)
    except Exception as e:
        logger.error(f"tinygraph: could not draw an image: {e}", location=node)
        raise nodes.SkipNode
    alt = html.escape(node["alt"], quote=True)
    hint = ('<span class="tinygraph-zoom">scaled to the page: click to open it at full size'
            '</span>' if _width_px(path) > SCALED_DOWN_WIDTH else "")
    self.body.append(f'<a class="tinygraph-image reference external" href="{relative}" '
                     f'title="open the full-size image">\n<img src="{relative}" alt="{alt}"/>'
                     f'{hint}</a>\n')
    raise nodes.SkipNode


def skip_image(self, node):
    raise nodes.SkipNode


def check_links(app, exception):
    """After an HTML build: every local link must lead somewhere (docs/_ext/local_links.py);
    each broken one is a warning, so an error under -W."""
    if exception is not None or app.builder.format != "html":
        return
    sys.path.insert(0, str(pathlib.Path(__file__).parent))
    from local_links import broken_links
    site = pathlib.Path(app.outdir)
    for page, href, why in broken_links(site):
        logger.warning(f"broken link in {page.relative_to(site)}: {href}: {why}")


def xp_as_numpy(app, what, name, obj, options, signature, return_annotation):
    """Signatures show numpy where the source says `xp` (tinygraph.backend's name for it)."""
    if signature and "xp." in signature:
        return signature.replace("xp.", "numpy."), return_annotation
    return None


def setup(app):
    app.add_node(tinygraph_image, html=(visit_image_html, None),
                 latex=(skip_image, None), text=(skip_image, None), man=(skip_image, None),
                 texinfo=(skip_image, None))
    app.add_directive("tinygraph-diagram", DiagramDirective)
    app.add_directive("tinygraph-explorer", ExplorerDirective)
    app.add_directive("tinygraph-vanishing", VanishingDirective)
    app.add_directive("tinygraph-state-norms", StateNormsDirective)
    app.add_directive("tinygraph-command", CommandDirective)
    app.add_directive("tinygraph-attention", AttentionDirective)
    app.add_directive("tinygraph-benchmark-chart", BenchmarkChartDirective)
    app.add_directive("tinygraph-memory-timeline", MemoryTimelineDirective)
    app.add_directive("tinygraph-ops-table", ops_reference.directive())
    app.connect("autodoc-process-docstring", process_docstring)
    app.connect("autodoc-process-signature", xp_as_numpy)
    app.connect("build-finished", check_links)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
