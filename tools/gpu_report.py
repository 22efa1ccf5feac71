"""gpu-check's report: one Row per engine, the verdict rules and report.md (tools/gpu_check.py fills them)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass
class Row:
    """One engine's line in the report."""
    name: str
    verdict: str                                  # PASS / FAIL / INCONCLUSIVE / SKIPPED (this TensorRT cannot build it)
    reasons: list[str] = field(default_factory=list)
    numbers: dict[str, float] = field(default_factory=dict)
    built: str = "-"                              # how TensorRT built it (sidecar: strong typing, builder flags)
    notes: list[str] = field(default_factory=list)  # listed in the report whatever the verdict (standalone Q layers)


def tiers_row(name: str, returncode: int, stdout: str) -> Row:
    """pytest's exit code and summary -> a Row: PASS needs exit 0 and at least one test passed."""
    lines = stdout.strip().splitlines() or ["(no output)"]
    passed = sum(int(n) for n in re.findall(r"(\d+) passed", lines[-1]))
    if returncode not in (0, 5):
        return Row(name, "FAIL", [lines[-1]])
    if returncode == 0 and passed:
        return Row(name, "PASS", [lines[-1]])
    skips = [line.split("] ", 1)[-1] for line in lines if line.startswith("SKIPPED")][:5]
    return Row(name, "INCONCLUSIVE", [f"no test passed: {lines[-1]}", *skips])


def exit_code(rows: list[Row]) -> int:
    """1 if anything failed, else 3 if anything (or everything: no rows) proved nothing, else 0. SKIPPED rows (a
    case this TensorRT does not support, said in the report) count for neither."""
    verdicts = {r.verdict for r in rows}
    if "FAIL" in verdicts:
        return 1
    return 3 if not rows or "INCONCLUSIVE" in verdicts else 0


NUMBER_COLUMNS = ("F1", "max box error px", "max score error", "batch", "median ms", "p99 ms", "GPU compute ms",
                  "images/s", "INT8 convs", "quantized convs", "convs", "standalone Q/DQ/Cast", "build s")


def speed_lines(rows: list[Row]) -> list[str]:
    """FP16 vs INT8 side by side for each engine pair (same NMS, batch mode, device): the engine's own GPU
    compute median where measured, else the whole detect() call; INT8/FP16 < 1 is INT8 being faster."""
    by_name = {r.name: r for r in rows}
    lines = []
    for name, fp16 in by_name.items():
        int8 = by_name.get("int8-" + name[len("fp16-"):]) if name.startswith("fp16-") else None
        if int8 is None:
            continue
        key = "GPU compute ms" if "GPU compute ms" in fp16.numbers and "GPU compute ms" in int8.numbers else "median ms"
        a, b = fp16.numbers.get(key), int8.numbers.get(key)
        ratio = f"{b / a:.2f}" if a and b else "-"
        lines.append(f"| {name[len('fp16-'):]} | {key} | {_ms(a)} | {_ms(b)} | {ratio} |")
    if not lines:
        return []
    return ["FP16 vs INT8 (INT8/FP16 < 1: INT8 is faster):", "",
            "| engine | timed | FP16 ms | INT8 ms | INT8/FP16 |", "|---|---|---|---|---|", *lines, ""]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def note_lines(rows: list[Row]) -> list[str]:
    """What each engine's layer information listed beside its verdict (standalone Q/DQ/Cast layers)."""
    lines = [f"- {r.name}: " + "; ".join(r.notes[:20]) + (f" (+{len(r.notes) - 20} more)" if len(r.notes) > 20 else "")
             for r in rows if r.notes]
    return ["Standalone Q/DQ/Cast layers in the INT8 engines (a standalone Quantize at the entry of an INT8 region "
            "is TensorRT's normal form; a standalone Dequantize, or a Cast next to a Q/DQ, fails the row):", "",
            *lines, ""] if lines else []


def report_markdown(env: dict[str, str], rows: list[Row], tiers: Row | None, planned: int = 12) -> str:
    """gpu-check/report.md: versions, one table row per engine (how it was built, its numbers), the test tiers,
    and why each non-PASS is so. Written after every engine: until the tiers ran, Overall is INCOMPLETE."""
    lines = ["# effdet-deploy gpu-check", "", *[f"- {k}: {v}" for k, v in env.items()], "",
             "Reference: the same ONNX file on ONNX Runtime; limits per precision from runtime/parity.py. "
             "median/p99 ms: a whole detect() call (preprocessing, engine, post-processing); GPU compute ms: "
             "the engine alone (CUDA events).", "",
             "| engine | verdict | built | " + " | ".join(NUMBER_COLUMNS) + " |",
             "|---|---|---|" + "---|" * len(NUMBER_COLUMNS)]
    for r in rows:
        cells = [f"{r.numbers[c]:.4g}" if c in r.numbers else "-" for c in NUMBER_COLUMNS]
        lines.append(f"| {r.name} | {r.verdict} | {r.built} | " + " | ".join(cells) + " |")
    done = rows + ([tiers] if tiers else [])
    lines += ["", *speed_lines(rows), *note_lines(rows)]
    lines += [f"Test tiers ({tiers.name}): {tiers.verdict}: {'; '.join(tiers.reasons)}" if tiers
              else f"Test tiers: not run yet ({len(rows)} of {planned} engines checked)", ""]
    for r in done:
        if r.verdict != "PASS":
            lines.append(f"- {r.name}: {r.verdict}: {'; '.join(r.reasons) or 'no reason recorded'}")
    overall = {0: "PASS", 1: "FAIL", 3: "INCONCLUSIVE"}[exit_code(done)] if tiers else "INCOMPLETE"
    return "\n".join(lines + ["", f"Overall: {overall}", ""])


