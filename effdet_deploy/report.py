"""report.md and its plots (matplotlib, headless) from a pipeline Run."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from runtime.atomic import write_atomic


def _plots(run: Any) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = run.settings.output
    written = []
    labels = list(run.bench)
    if labels:
        med = [run.bench[k]["total_ms"]["median"] for k in labels]
        p90 = [run.bench[k]["total_ms"]["p90"] for k in labels]
        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.bar(labels, med, color="#4C72B0", label="median")
        ax.scatter(labels, p90, color="#C44E52", marker="_", s=400, label="p90", zorder=3)
        ax.set_ylabel("latency per image (ms)")
        ax.set_title(f"{run.settings.model}: end-to-end latency (incl. pre/post), batch 1")
        ax.legend()
        plt.xticks(rotation=20)
        fig.tight_layout()
        fig.savefig(out / "latency.png", dpi=110)
        plt.close(fig)
        written.append("latency.png")
    both = [k for k in labels if k in run.accuracy]
    if both:
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for i, k in enumerate(both):
            x, y = run.bench[k]["total_ms"]["median"], run.accuracy[k]["AP"]
            ax.scatter([x], [y], s=60)
            ax.annotate(k, (x, y), textcoords="offset points", xytext=(6, -14 + 12 * (i % 4)))  # no overlap
        ax.set_xlabel("median latency (ms)")
        ax.set_ylabel("COCO AP@[.5:.95]")
        ax.set_title("accuracy vs latency")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / "accuracy_vs_latency.png", dpi=110)
        plt.close(fig)
        written.append("accuracy_vs_latency.png")
    return written


def _num(value: float | None, digits: str) -> str:
    """A parity number; n/a where nothing was compared (no detection on either side, no matched pair)."""
    return "n/a" if value is None else format(value, digits)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def write_report(run: Any) -> Path:
    s = run.settings
    lines = [f"# Deployment report: {s.model}", "", f"Reference (PyTorch): `{run.reference}`", ""]
    lines += ["## Artifacts", ""] + _table(["artifact", "file", "size MB"], [
        [k, f"`{Path(v).name}`", f"{Path(v).stat().st_size / 1e6:.1f}"] for k, v in run.artifacts.items()]) + [""]
    lines += ["## Parity against PyTorch (detections, score >= 0.3)", ""] + _table(
        ["artifact", "F1", "mean IoU", "max score err", "max box err px", "result"],
        [[k, _num(p["f1"], ".3f"), _num(p["mean_iou"], ".3f"), _num((p["scores"] or {}).get("max_abs"), ".2e"),
          _num((p["boxes"] or {}).get("max_abs"), ".3f"),
          p["verdict"] + (": " + "; ".join(p["failures"] or p["inconclusive"]) if p["verdict"] != "PASS" else "")]
         for k, p in run.parity.items()]) + [""]
    lines += ["Raw network outputs (every anchor, before NMS; same inputs):", ""] + _table(
        ["artifact", "max score err", "score cosine", "mean box err px", "result"],
        [[k] + (["-", "-", "-", p["raw_note"]] if p["raw"] is None else
                [f"{p['raw']['scores']['max_abs']:.2e}", f"{p['raw']['scores']['cosine']:.6f}",
                 f"{p['raw']['boxes']['mean_abs']:.2e}", "PASS" if p["raw"]["pass"] else "FAIL"])
         for k, p in run.parity.items()]) + [""]
    lines += ["## Speed (this machine)", ""] + _table(
        ["artifact", "backend", "median ms", "p90 ms", "p99 ms", "img/s", "stable"],
        [[k, b["backend"], f"{b['total_ms']['median']:.1f}", f"{b['total_ms']['p90']:.1f}", f"{b['total_ms']['p99']:.1f}",
          f"{b['throughput_img_s']:.1f}", "no (CV > 5%)" if b["unstable"] else "yes"] for k, b in run.bench.items()])
    lines += ["", "INT8 on the CPU is an accuracy preview (ONNX Runtime emulates Q/DQ), not a speed path; "
              "FP16 on the CPU is slower than FP32. Speed claims for FP16/INT8 need TensorRT on a GPU.", ""]
    if run.accuracy:
        lines += ["## Accuracy (COCO)", ""] + _table(["artifact", "AP", "AP50", "AP75", "APs", "APm", "APl"],
                                                    [[k] + ["n/a" if a[m] is None else f"{a[m]:.3f}" for m in ("AP", "AP50", "AP75", "APs", "APm", "APl")]
                                                     for k, a in run.accuracy.items()]) + [""]
    plots = _plots(run)
    for picture in plots + run.pictures:
        lines += [f"![{picture}]({picture})", ""]
    lines += ["## Notes", ""] + [f"- {n}" for n in run.notes] + ["", "## Step times", ""]
    lines += [f"- {k}: {v:.1f} s" for k, v in run.timings.items()]
    return write_atomic(s.output / "report.md", "\n".join(lines) + "\n")
