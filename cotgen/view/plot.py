"""`cotgen stats --plot`: the histograms of TreeHistograms drawn with matplotlib to PNG, SVG or PDF."""

from __future__ import annotations

from pathlib import Path

from cotgen.errors import MissingExtraError, UsageError
from cotgen.treestats import VALUE_BINS, TreeHistograms, TreeSetSummary


def _matplotlib():
    try:
        import matplotlib
    except ImportError:
        raise MissingExtraError("matplotlib", "plot", "cotgen stats --plot") from None
    return matplotlib


def check_plot_path(path: Path) -> None:
    """Refuse a file type matplotlib cannot write, before any tree is read."""
    _matplotlib()
    from matplotlib.backend_bases import FigureCanvasBase

    kinds = FigureCanvasBase.get_supported_filetypes()
    if path.suffix.lower().lstrip(".") not in kinds:
        raise UsageError(f"--plot {path}: give a file ending in .png, .svg or .pdf (or one of: {', '.join(sorted(kinds))})")
    if not path.parent.is_dir():
        raise UsageError(f"--plot {path}: folder {path.parent} does not exist")


def plot_stats(hist: TreeHistograms, summary: TreeSetSummary, path: Path) -> None:
    """Six panels: tree depth, branching, leaf values (correct vs wrong), correct-leaf share
    by depth, tokens per tree, and the headline figures."""
    _matplotlib()
    # Figure without pyplot: no global state, no GUI backend, safe in a server process.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(15, 8.5), layout="constrained")
    axes = fig.subplots(2, 3)
    fig.suptitle(f"cotgen stats: {summary.trees:,} trees, {summary.nodes:,} nodes")

    _bars(axes[0, 0], hist.tree_depth, "tree depth (deepest node)", "trees")
    _bars(axes[0, 1], hist.branching, "children per internal node", "nodes")

    ax = axes[0, 2]
    edges = [i / VALUE_BINS for i in range(VALUE_BINS + 1)]
    centres = [(a + b) / 2 for a, b in zip(edges, edges[1:], strict=False)]
    for counts, label, colour in ((hist.correct_leaf_values, "correct", "#12a150"), (hist.wrong_leaf_values, "wrong", "#d92d20")):
        ax.hist(centres, bins=edges, weights=[counts[i] for i in range(VALUE_BINS)], alpha=0.55,
                label=f"{label} ({sum(counts.values()):,})", color=colour)
    ax.set(title="value of graded terminal leaves", xlabel="value", ylabel="leaves", xlim=(0, 1))
    ax.legend()

    ax = axes[1, 0]
    depths = sorted(hist.terminal_by_depth)
    shares = [hist.correct_by_depth[d] / hist.terminal_by_depth[d] for d in depths]
    bars = ax.bar(depths, shares, color="#1f5fbf")
    ax.bar_label(bars, labels=[f"{hist.terminal_by_depth[d]:,}" for d in depths], fontsize=7, rotation=90, padding=2)
    ax.set(title="correct share of graded leaves, by depth", xlabel="depth", ylabel="share correct (bar label: leaves)", ylim=(0, 1.2))
    _integer_ticks(ax)

    ax = axes[1, 1]
    tokens = sorted(hist.tokens_per_tree)
    if tokens and tokens[-1] > 0:
        ax.hist(tokens, bins=min(40, max(len(tokens), 1)), weights=[hist.tokens_per_tree[t] for t in tokens], color="#7a5af8")
    else:
        ax.text(0.5, 0.5, "no token counts in these trees", ha="center", va="center", transform=ax.transAxes)
    ax.set(title="generated tokens per tree", xlabel="tokens", ylabel="trees")

    ax = axes[1, 2]
    ax.axis("off")
    figures = summary.as_dict()
    lines = [
        f"trees: {figures['trees']:,} ({figures['failed_trees']:,} failed)",
        f"nodes per tree: mean {figures['nodes_per_tree_mean']:.1f}, max {figures['nodes_per_tree_max']:,}",
        f"depth: mean {figures['depth_mean']:.1f}, max {figures['depth_max']}",
        f"branching: mean {figures['branching_mean']:.2f}",
        f"terminal leaves: {figures['terminal_leaves']:,}",
        f"correct leaves: {figures['correct_leaves']:,} ({figures['correct_leaf_rate']:.1%})",
        f"trees with a correct leaf: {figures['trees_with_correct_leaf']:,}",
        f"generated tokens: {figures['generated_tokens']:,}",
    ]
    ax.text(0, 1, "\n".join(lines), va="top", family="monospace", fontsize=10)
    fig.savefig(path, dpi=110)


def _bars(ax, counts, title: str, ylabel: str) -> None:
    keys = sorted(counts)
    ax.bar(keys, [counts[k] for k in keys], color="#667085")
    ax.set(title=title, ylabel=ylabel)
    _integer_ticks(ax)


def _integer_ticks(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
