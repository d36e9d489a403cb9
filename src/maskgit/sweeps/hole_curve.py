"""The hole-size study's outputs from its rows (one per hole setting and method): the table, the FID
curve, the picture and where each model crosses the classical methods.

The crossover of a model on a series of holes (boxes, strokes) is the smallest hole fraction from
which, at every larger size of that series, the model's FID interval lies wholly below the interval of
every classical method (mean colour included): `hi(model) < min(lo(classical))`.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from maskgit.utils.atomic import atomic_path, save_json

CLASSICAL = ("masked_input", "mean_colour", "telea", "navier_stokes")
COLUMNS = ("hole", "series", "fraction", "method", "kind", "fid", "fid_ci95_low", "fid_ci95_high",
           "kid_mean", "kid_std", "hole_psnr", "hole_l1", "ssim")
SERIES_STYLE = {"box": ("-", "o"), "freeform": ("--", "^"), "border": (":", "s")}


@dataclass
class HolePicture:
    """The first images of one hole setting: its masked inputs and each row's results."""

    fraction: float
    masked: Tensor
    rows: dict[str, Tensor]  # name -> uint8 (k, 3, H, W), the ground truth last


def series_of(masks: dict[str, Any]) -> str:
    """The line a hole setting belongs to: its mask generator, or `dataset` (a marked point)."""
    return str(masks.get("source", "dataset"))


def kind_of(method: str) -> str:
    return "classical" if method in CLASSICAL else "ceiling"


def crossovers(rows: list[dict[str, Any]], models: list[str]) -> dict[str, dict[str, Any]]:
    """{model: {series: {"from_fraction", "from_hole", "clear_at", "measured_at"}}} (from_*: None when
    it never stays clear), over the holes of the series where the model and a classical method have FID
    intervals: a study merged from runs over different holes reads each model on its own holes."""
    result: dict[str, dict[str, Any]] = {}
    for model in models:
        result[model] = {}
        for series in dict.fromkeys(r["series"] for r in rows):
            every = sorted({(r["fraction"], r["hole"]) for r in rows if r["series"] == series})
            judged = [(h, _clear_of_classical(rows, h[1], model)) for h in every]
            holes = [h for h, c in judged if c is not None]
            clear = [c for _, c in judged if c is not None]
            if not holes:
                continue
            first = next((i for i in range(len(holes)) if all(clear[i:])), None)
            result[model][series] = {
                "from_fraction": holes[first][0] if first is not None else None,
                "from_hole": holes[first][1] if first is not None else None,
                "clear_at": [hole for (_, hole), c in zip(holes, clear, strict=True) if c],
                "measured_at": [hole for _, hole in holes]}
    return result


def _clear_of_classical(rows: list[dict[str, Any]], hole: str, model: str) -> bool | None:
    at = {r["method"]: r for r in rows if r["hole"] == hole}
    ours = at.get(model)
    classical = [r for r in at.values() if r["kind"] == "classical" and r["method"] != "masked_input"]
    if ours is None or "fid_ci95_high" not in ours or not classical:
        return None
    return ours["fid_ci95_high"] < min(r["fid_ci95_low"] for r in classical)


def verdict(rows: dict[str, dict[str, Any]], model: str, where: str) -> str:
    """One line: whether `model`'s FID interval is clear of every classical method's in `rows`
    ({method: metrics}, one hole setting), and by how much the best classical method leads if not."""
    classical = {m: r for m, r in rows.items() if m in CLASSICAL and m != "masked_input" and "fid" in r}
    ours = rows.get(model, {})
    if not classical or "fid_ci95_high" not in ours:
        return f"{where}: no FID intervals to compare"
    best = min(classical, key=lambda m: classical[m]["fid"])
    if ours["fid_ci95_high"] < min(r["fid_ci95_low"] for r in classical.values()):
        return (f"{where}: this run beats every classical method, intervals apart (FID {ours['fid']:.1f} "
                f"vs {best} {classical[best]['fid']:.1f})")
    return (f"{where}: this run does not beat the classical methods (FID {ours['fid']:.1f} vs {best} "
            f"{classical[best]['fid']:.1f}); by hole size: python holes.py +models.this=<its checkpoint> "
            "(docs/hole_size.md)")


def write_study(rows: list[dict[str, Any]], pictures: dict[str, HolePicture], out: Path,
                models: list[str]) -> dict[str, Any]:
    """hole_size.csv / .md / .png and holes.png in `out`; returns the summary (rows, crossovers)."""
    with atomic_path(out / "hole_size.csv") as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        writer.writerows([[r.get(c, "") for c in COLUMNS] for r in rows])
    cross = crossovers(rows, models)
    text = markdown(rows, cross)
    with atomic_path(out / "hole_size.md") as tmp:
        tmp.write_text(text)
    if any("fid" in r for r in rows):
        plot(rows, out / "hole_size.png")
    if pictures:
        from maskgit.utils.pictures import save_picture

        save_picture(picture(pictures), out / "holes.png")
    return {"rows": rows, "crossovers": cross, "table": str(out / "hole_size.md")}


def _cell(r: dict[str, Any] | None) -> str:
    if r is None:
        return ""
    if "fid_ci95_low" in r:
        return f"{r['fid']:.1f} [{r['fid_ci95_low']:.1f}, {r['fid_ci95_high']:.1f}]"
    return f"{r['hole_psnr']:.2f} dB"


def markdown(rows: list[dict[str, Any]], cross: dict[str, dict[str, Any]]) -> str:
    """Methods down, hole settings across (by series, then fraction): FID [95% interval], or hole
    PSNR without FID; then each model's crossover."""
    holes = sorted({(r["series"], r["fraction"], r["hole"]) for r in rows},
                   key=lambda h: (h[0] == "dataset", h[0], h[1]))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    by = {(r["hole"], r["method"]): r for r in rows}
    metric = "FID [95% interval]" if any("fid" in r for r in rows) else "hole PSNR"
    lines = [f"# {metric} by hole setting (hole fraction of the image)", "",
             "| method | " + " | ".join(f"{h} ({f:.0%})" for _, f, h in holes) + " |",
             "|---|" + "---:|" * len(holes)]
    lines += [f"| {m} | " + " | ".join(_cell(by.get((h, m))) for _, _, h in holes) + " |" for m in methods]
    lines += ["", "| hole PSNR (dB) / KID x 1e3 | " + " | ".join(h for _, _, h in holes) + " |",
              "|---|" + "---:|" * len(holes)]
    lines += [f"| {m} | " + " | ".join(_psnr_kid(by.get((h, m))) for _, _, h in holes) + " |"
              for m in methods]
    lines += ["", "Crossover (the smallest hole from which the model's FID interval stays below every "
              "classical method's, mean colour included):", ""]
    for model, series in cross.items():
        for name, c in series.items():
            where = (f"from {c['from_hole']} ({c['from_fraction']:.0%} of the image) on"
                     if c["from_hole"] else "nowhere")
            lines.append(f"- {model}, {name}: {where}; clear at: {', '.join(c['clear_at']) or 'none'} "
                         f"(measured at: {', '.join(c.get('measured_at', []))})")
    return "\n".join(lines) + "\n"


def _psnr_kid(r: dict[str, Any] | None) -> str:
    if r is None:
        return ""
    kid = f" / {r['kid_mean'] * 1e3:.1f}" if "kid_mean" in r else ""
    return f"{r['hole_psnr']:.2f}{kid}"


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """FID against the hole fraction: a panel per series of holes, one line per method with its
    interval shaded; the data set's own masks (`dataset`) as a star on the strokes panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = [s for s in dict.fromkeys(r["series"] for r in rows) if s != "dataset"]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    colours = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(methods)}
    fig, axes = plt.subplots(1, max(1, len(lines)), figsize=(6 * max(1, len(lines)), 4.5), squeeze=False,
                             sharey=True)
    for ax, series in zip(axes[0], lines or ["dataset"], strict=False):
        style, marker = SERIES_STYLE.get(series, ("-", "o"))
        for m in methods:
            pts = sorted((r["fraction"], r["fid"], r.get("fid_ci95_low", r["fid"]),
                          r.get("fid_ci95_high", r["fid"])) for r in rows
                         if r["method"] == m and r["series"] == series and "fid" in r)
            if pts:
                x = [100 * p[0] for p in pts]
                ax.plot(x, [p[1] for p in pts], style, marker=marker, color=colours[m], label=m)
                ax.fill_between(x, [p[2] for p in pts], [p[3] for p in pts], color=colours[m], alpha=0.18)
        if series == "freeform" or len(lines) <= 1:
            for r in rows:
                if r["series"] == "dataset" and "fid" in r:
                    ax.errorbar([100 * r["fraction"]], [r["fid"]], fmt="*", markersize=13,
                                color=colours[r["method"]],
                                yerr=[[r["fid"] - r.get("fid_ci95_low", r["fid"])],
                                      [r.get("fid_ci95_high", r["fid"]) - r["fid"]]])
        ax.set_title(f"{series} holes" if series != "freeform" else "free-form strokes")
        ax.set_xlabel("hole fraction of the image (%)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("FID (95% interval shaded)")
    # one legend for every method: a model measured only on some series must still be named
    from matplotlib.lines import Line2D
    handles = [Line2D([], [], color=colours[m], marker="o", label=m) for m in methods]
    if any(r["series"] == "dataset" for r in rows):
        handles.append(Line2D([], [], color="gray", marker="*", markersize=11, linestyle="",
                              label="the lab's masks"))
    axes[0][-1].legend(handles=handles, fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def picture(pictures: dict[str, HolePicture], label_width: int = 150, gap: int = 12) -> Tensor:
    """A row per method (masked input first, ground truth last), a block of columns per hole setting."""
    import numpy as np
    from PIL import Image, ImageDraw
    from torchvision.utils import make_grid

    blocks = []
    for p in pictures.values():
        block = torch.cat([p.masked, *p.rows.values()])
        blocks.append(make_grid(block, nrow=len(p.masked), padding=2, pad_value=255))
    names = ["masked input", *next(iter(pictures.values())).rows]
    top = 16
    width = label_width + sum(b.shape[2] for b in blocks) + gap * (len(blocks) - 1)
    canvas = Image.new("RGB", (width, top + max(b.shape[1] for b in blocks)), "white")
    draw = ImageDraw.Draw(canvas)
    x = label_width
    for (hole, p), block in zip(pictures.items(), blocks, strict=True):
        canvas.paste(Image.fromarray(block.permute(1, 2, 0).numpy()), (x, top))
        draw.text((x + 2, 2), f"{hole} ({p.fraction:.0%} hole)", fill="black")
        x += block.shape[2] + gap
    row = next(iter(pictures.values())).masked.shape[2] + 2
    for i, name in enumerate(names):
        draw.text((4, top + 2 + i * row + row // 2 - 6), name, fill="black")
    return torch.from_numpy(np.array(canvas)).permute(2, 0, 1).contiguous()


def print_study(summary: dict[str, Any], out: Path) -> None:
    from rich.console import Console
    from rich.markdown import Markdown

    console = Console()
    console.print(Markdown(Path(summary["table"]).read_text()))
    console.print(f"hole-size study: {out} (hole_size.md, hole_size.csv, hole_size.png, holes.png)")


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a study's hole_size.csv (blank cells left out): a published study merges with new
    runs made on another machine, where its runs' folders are not."""
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise ValueError(f"{path} is not a hole_size.csv (its header is not {','.join(COLUMNS)})")
        text = ("hole", "series", "method", "kind")
        rows = []
        for line, row in enumerate(reader, start=2):
            try:
                rows.append({k: (v if k in text else float(v)) for k, v in row.items() if v != ""})
            except ValueError as err:  # a number column holding something else
                raise ValueError(f"{path}, line {line}: {err}") from None
        return rows


def merge_studies(sources: list[Path]) -> tuple[list[dict[str, Any]], list[str]]:
    """The rows of several holes.py runs (folders) and studies (their hole_size.csv) as one study: a row
    once per hole and method, the first source's (the classical rows are the same numbers in every
    run: same images and masks); a run's ceiling rows named after the model whose VQGAN it is."""
    rows: list[dict[str, Any]] = []
    models: list[str] = []
    seen: set[tuple[str, str]] = set()
    for source in sources:
        if source.suffix == ".csv":  # a merged study: its models and ceiling rows are named already
            found = read_rows(source)
            models += [m for m in dict.fromkeys(r["method"] for r in found if r["kind"] == "maskgit")
                       if m not in models]
        else:
            summary = json.loads((source / "summary.json").read_text())
            config = summary["config"]
            run_models = list(config["models"])
            ceiling_of = config.get("ceiling_model") or run_models[0]
            models += [m for m in run_models if m not in models]
            found = [{**r, "method": f"{r['method']} ({ceiling_of})"} if r["kind"] == "ceiling" else r
                     for r in summary["rows"]]
        for r in found:
            if (r["hole"], r["method"]) not in seen:
                seen.add((r["hole"], r["method"]))
                rows.append(r)
    holes = list(dict.fromkeys(r["hole"] for r in rows))
    rank = {m: i for i, m in enumerate(models)}
    rows.sort(key=lambda r: (holes.index(r["hole"]), rank.get(r["method"], len(rank)),
                             r["kind"] == "ceiling"))
    return rows, models


def main(argv: list[str] | None = None) -> None:
    """python -m maskgit.sweeps.hole_curve <holes run | hole_size.csv> ... --out DIR"""
    import argparse

    parser = argparse.ArgumentParser(description="one table and plot from several holes.py runs and "
                                                 "studies (their hole_size.csv)")
    parser.add_argument("runs", nargs="+", type=Path, help="holes.py run folders or hole_size.csv files")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    missing = [r for r in args.runs
               if not (r.is_file() if r.suffix == ".csv" else (r / "summary.json").is_file())]
    if missing:
        parser.exit(2, f"error: {missing[0]} is neither a finished holes.py run (its summary.json) nor a "
                       "hole_size.csv\n")
    try:
        rows, models = merge_studies(args.runs)
    except ValueError as err:  # a csv that is not a study's
        parser.exit(2, f"error: {err}\n")
    args.out.mkdir(parents=True, exist_ok=True)
    summary = write_study(rows, {}, args.out, models)
    save_json({**summary, "runs": [str(r) for r in args.runs]}, args.out / "summary.json")
    print_study(summary, args.out)


if __name__ == "__main__":
    main()
