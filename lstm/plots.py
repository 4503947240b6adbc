"""Figures drawn with matplotlib (headless: the Agg backend, files only)."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def loss_curve(losses, path, title="training loss"):
    """Plot `losses` against the step number (log scale) into `path`; returns the path."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(range(1, len(losses) + 1), losses, color="#3d85c6")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def vanishing_figure(norms_by_cell, path,
                     title="‖∂L/∂x_t‖ against distance from the loss\n"
                           "(untrained cells, random inputs; LSTM forget-gate bias 1)"):
    """Plot gradient norms against distance (log scale) into `path`; returns the path.

    norms_by_cell: {name: array of gradient norms indexed by distance}, e.g. the result of
        `lstm.vanishing.compare`.
    """
    colors = {"rnn": "#cc0000", "lstm": "#3d85c6", "gru": "#6aa84f"}
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, norms in norms_by_cell.items():
        ax.semilogy(range(len(norms)), norms, label=name.upper(), color=colors.get(name))
    ax.set_xlabel("distance from the loss (time steps)")
    ax.set_ylabel("gradient norm (log scale)")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def attention_figure(examples, path, title="attention weights (held-out questions)"):
    """One heatmap per example: output characters (rows) against input characters
    (columns), each row summing to 1. examples: [(question, answer, weights)] with weights
    (len(answer), len(question)) in reading order. Returns the path."""
    fig, axes = plt.subplots(1, len(examples), figsize=(4.2 * len(examples), 3.6),
                             squeeze=False)
    for ax, (question, answer, weights) in zip(axes[0], examples):
        ax.imshow(weights, cmap="Blues", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(question)), list(question.replace(" ", "␣")), fontsize=8)
        ax.set_yticks(range(len(answer)), list(answer.replace(" ", "␣")), fontsize=8)
        ax.set_xlabel(f"input: {question}")
        ax.set_ylabel(f"output: {answer}")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
