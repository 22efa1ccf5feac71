"""The picture of `compare --layers`: SNR and relative error of every tensor against its depth (graph order),
with the network's parts (input, backbone stages, BiFPN, class and box heads) shaded and labelled, the limit,
and the first divergence marked."""
from __future__ import annotations

from pathlib import Path

from effdet_deploy.layer_compare import LayerReport
from runtime.atomic import write_atomic

# node group (calibration/groups.py) -> band label; the BiFPN's resampling joins the band it sits in, and the two
# heads share one band (their levels interleave in graph order) and differ by colour
PART_RULES = [(r"^backbone/stem$", "stem"), (r"^backbone/blocks\.(\d+)$", r"stage \1"),
              (r"^fpn/resample$", ""), (r"^fpn/cell\.(\d+)$", r"BiFPN \1"), (r"^(class|box)_net/", "heads")]
COLOURS = [("class_net/", "tab:orange", "class head"), ("box_net/", "tab:red", "box head"),
           ("fpn/", "tab:green", "BiFPN"), ("backbone/", "tab:blue", "backbone"), ("", "tab:gray", "input")]


def part_of(group: str) -> str:
    """Node group -> band label ('input' before the backbone, '' for what joins the current band)."""
    from calibration.groups import first_rule

    return first_rule(PART_RULES, group, "input")


def colour_of(group: str) -> tuple[str, str]:
    return next((colour, label) for prefix, colour, label in COLOURS if group.startswith(prefix))


def plot_layers(report: LayerReport, path: Path) -> Path:
    """Write the plot (PNG) atomically; returns its path."""
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tensors = report.compared
    depth = [t.depth for t in tensors]
    snr = [report.stats[t.name].snr_db for t in tensors]
    rel = [max(report.stats[t.name].mean_rel, 1e-9) for t in tensors]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(14, 7), sharex=True)
    colours = [colour_of(t.group) for t in tensors]
    for colour, label in dict.fromkeys(colours):
        pick = [i for i, c in enumerate(colours) if c == (colour, label)]
        top.plot([depth[i] for i in pick], [snr[i] for i in pick], ".", ms=3, color=colour, label=label)
        bottom.semilogy([depth[i] for i in pick], [rel[i] for i in pick], ".", ms=3, color=colour)
    top.set_ylabel("SNR (dB, higher = closer)")
    bottom.set_ylabel("mean relative error")
    bottom.set_xlabel("depth (tensor index, data-flow order of the FP32 graph)")
    limit = report.limits.get("layer_snr_db")
    if limit is not None:
        top.axhline(limit, color="gray", ls="--", lw=1, label=f"{report.precision} limit {limit:g} dB")
    _shade_parts(report, (top, bottom))
    first = report.first_divergence()
    if first is not None:
        for ax in (top, bottom):
            ax.axvline(first[0].depth, color="black", lw=1)
        top.annotate(f"first divergence: {first[0].node}", (first[0].depth, limit or 0), fontsize=7,
                     xytext=(5, 5), textcoords="offset points")
    top.legend(loc="lower left", fontsize=7)
    top.set_title(f"{Path(report.target).name} ({report.precision}) vs {Path(report.reference).name}: "
                  f"{len(tensors)} tensors, {report.images} image(s)", fontsize=9, pad=16)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return write_atomic(path, buffer.getvalue())


def _shade_parts(report: LayerReport, axes: tuple) -> None:
    """Alternating bands, one per network part from its first tensor on (parts interleave in graph order: a
    part seen before joins the current band), its label on top."""
    runs: list[list] = []
    seen: set[str] = set()
    for t in report.tensors:
        part = part_of(t.group)
        if runs and (part in seen or not part):
            runs[-1][2] = t.depth
        else:
            runs.append([part, t.depth, t.depth])
            seen.add(part)
    top = axes[0]
    for i, (part, lo, hi) in enumerate(runs):
        for ax in axes:
            ax.axvspan(lo - 0.5, hi + 0.5, color="0.92" if i % 2 else "0.98", zorder=0)
        if hi - lo >= 6:
            top.text((lo + hi) / 2, 1.01, part, transform=top.get_xaxis_transform(), ha="center", va="bottom",
                     fontsize=7, rotation=0)
