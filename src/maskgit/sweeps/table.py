"""The FID table of an eval sweep: `maskgit-fid-table <sweep dir>` (or `python sweeps/fid_table.py`).

Reads every `metrics.json` under the sweep folder, finished or not, and the planned grid from
Hydra's `multirun.yaml` (points not run yet are blank), then writes into the sweep folder:

- `fid_table.csv`: one row per point (status done / reused / missing, its coordinates, metrics, timings);
- `fid_table.md`: rows mask function, columns total_iter (or, when it is not swept, the first other
  swept key: sweet_spot, guidance, ...), each cell "FID [interval] (leak-free FID)" and, for
  class-conditional generation, the class consistency; the lowest FID in bold; one table per value of
  any other swept key. A sweep over all three axes (mask_func, total_iter and sweet_spot) gives each
  cell its best sweet spot ("@s": steps run). Without FID (metrics.fid.enabled=false) the cells are
  the hole PSNR and masked-token accuracy, the best PSNR in bold. Points that do not exist by rule
  (sweet_spot > total_iter) are n/a;
- `fid_vs_<col>.png` and `decode_time_vs_<col>.png`: one line per mask function (and table);
  `class_accuracy_vs_<col>.png` when the points measured class consistency; with sweet spots and
  total_iter both swept, `<metric>_vs_sweet_spot.png`: one line per mask function and a few T;

and, when the points logged to wandb, the same table and plots as one summary run in their group.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf

from maskgit.errors import ConfigError, exit_on_user_error

log = logging.getLogger(__name__)

ROW = "mask_func"
AXES = ("mask_func", "total_iter", "sweet_spot")
METRICS = ("fid", "fid_ci95_low", "fid_ci95_high", "fid_unseen", "fid_unseen_ci95_low",
           "fid_unseen_ci95_high", "kid_mean", "kid_std", "kid_unseen_mean", "kid_unseen_std", "hole_l1",
           "hole_psnr", "masked_token_accuracy", "class_accuracy", "classifier_val_accuracy")
TIMINGS = ("decode", "vqgan_decode", "features", "reference_stats", "total")


@dataclass
class Point:
    overrides: list[str]
    coords: dict[str, Any]
    report: dict[str, Any] | None = None
    dir: Path | None = None

    @property
    def status(self) -> str:
        if self.report is None:
            return "missing"
        if self.report.get("not_applicable"):
            return "n/a"
        return "reused" if self.report.get("skipped") else "done"

    def metric(self, name: str) -> float | None:
        return (self.report or {}).get("metrics", {}).get(name)

    def interval(self, name: str = "fid") -> tuple[float, float] | None:
        low, high = self.metric(f"{name}_ci95_low"), self.metric(f"{name}_ci95_high")
        return None if low is None or high is None else (low, high)

    def seconds(self, phase: str) -> float | None:
        return (self.report or {}).get("timings_s", {}).get(phase)


@dataclass
class Sweep:
    dir: Path
    points: list[Point]
    swept: list[str]  # keys with more than one value, in command-line order
    config: dict[str, Any] = field(default_factory=dict)  # multirun.yaml without its hydra node

    def values(self, key: str) -> list[Any]:
        seen: list[Any] = []
        for p in self.points:
            if p.coords.get(key) not in seen:
                seen.append(p.coords.get(key))
        return sorted(seen, key=_order) if key != ROW else seen


def _order(v: Any) -> tuple:
    return (0, v, "") if isinstance(v, int | float) and not isinstance(v, bool) else (1, 0, str(v))


# -- reading a sweep ---------------------------------------------------------------------------------

def _parse(overrides: Sequence[str]) -> list[tuple[str, Any]]:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    return [(o.key_or_group, o.value() if not o.is_sweep_override() else o.get_value_element_as_str())
            for o in parsed]


def _grid(overrides: Sequence[str]) -> list[list[str]]:
    """Every point's override list, as Hydra's basic sweeper expands a command line: the cartesian
    product of the sweeps' values (choice, range), one `key=value` per key (a later one replaces an
    earlier one), keys in their first order. Public API only (hydra.core.override_parser)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    per_key: dict[str, list[str]] = {}
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.get_key_element()
        if not override.is_sweep_override():
            per_key[key] = [f"{key}={override.get_value_element_as_str()}"]
        elif override.is_discrete_sweep():
            per_key[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
        else:
            raise ConfigError(f"{key}: the basic sweeper does not sweep {override.value_type.name} values")
    return [list(point) for point in itertools.product(*per_key.values())]


def _planned(sweep_dir: Path) -> tuple[list[list[str]] | None, dict[str, Any]]:
    """Every point's override list as Hydra's basic sweeper makes them, and the sweep's config."""
    file = sweep_dir / "multirun.yaml"
    if not file.is_file():
        return None, {}
    conf = OmegaConf.load(file)
    hydra = conf.pop("hydra", None) or {}
    params = [f"{k}={v}" for k, v in (OmegaConf.select(hydra, "sweeper.params") or {}).items()]
    task = list(OmegaConf.select(hydra, "overrides.task") or [])
    return _grid(params + task), OmegaConf.to_container(conf, resolve=False)


def _select(config: dict[str, Any], key: str) -> Any:
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def read_sweep(sweep_dir: str | os.PathLike) -> Sweep:
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise ConfigError(f"{sweep_dir}: no such sweep folder (give the multirun folder eval.py -m printed)")
    plan, config = _planned(sweep_dir)
    found: dict[frozenset, Point] = {}
    for file in sorted(sweep_dir.rglob("metrics.json")):
        if "wandb" in file.relative_to(sweep_dir).parts:
            continue
        overrides_file = file.parent / ".hydra" / "overrides.yaml"
        overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.is_file() else []
        point = Point(overrides, {}, _load_json(file), file.parent)
        found[_identity(overrides)] = point
    points = [found.pop(_identity(o), None) or Point(o, {}) for o in plan] if plan else []
    points += list(found.values())  # e.g. a folder of runs without multirun.yaml
    if not points:
        raise ConfigError(f"{sweep_dir}: neither metrics.json files nor a multirun.yaml (not an eval sweep)")

    parsed = [dict(_parse(p.overrides)) for p in points]
    swept = [k for k in dict.fromkeys(k for d in parsed for k in d)
             if len({repr(d.get(k)) for d in parsed}) > 1]
    for point, values in zip(points, parsed, strict=True):
        for key in dict.fromkeys([*AXES, *swept]):
            if key in values:
                point.coords[key] = values[key]
            elif point.report is not None:
                point.coords[key] = _select(point.report.get("config", {}), key)
            else:
                point.coords[key] = _select(config, key)
    return Sweep(sweep_dir, points, swept, config)


def _identity(overrides: Sequence[str]) -> frozenset:
    return frozenset((k, repr(v)) for k, v in _parse(overrides))


def _load_json(file: Path) -> dict[str, Any]:
    import json

    return json.loads(file.read_text())


# -- writing the table ---------------------------------------------------------------------------------

def column_key(sweep: Sweep, cols: str = "auto") -> str:
    """total_iter, or when it is not swept the first swept key but the rows' (e.g. guidance)."""
    if cols != "auto":
        return cols
    if "total_iter" in sweep.swept:
        return "total_iter"
    return next((k for k in sweep.swept if k != ROW), "total_iter")


BEST_OF = "sweet_spot"  # with total_iter as the columns, a cell shows its best sweet spot


@dataclass(frozen=True)
class Metric:
    """What the table ranks by: FID (lower is better, with its interval), or without FID hole PSNR."""

    name: str
    lower_is_better: bool

    def better(self, a: float, b: float) -> bool:
        return a < b if self.lower_is_better else a > b


def ranking_metric(sweep: Sweep) -> Metric:
    has_fid = any(p.metric("fid") is not None for p in sweep.points)
    return Metric("fid", True) if has_fid else Metric("hole_psnr", False)


def best_of(sweep: Sweep, col: str) -> str | None:
    """The swept key each cell takes its best value over (sweet_spot, with total_iter columns)."""
    return BEST_OF if BEST_OF in sweep.swept and col != BEST_OF else None


def table_groups(sweep: Sweep, col: str) -> list[dict[str, Any]]:
    """One dict of fixed values per table: the swept keys other than the rows, the columns and the one
    each cell takes its best over."""
    others = [k for k in sweep.swept if k not in (ROW, col, best_of(sweep, col))]
    groups: list[dict[str, Any]] = []
    for p in sorted(sweep.points, key=lambda p: [_order(p.coords.get(k)) for k in others]):
        g = {k: p.coords.get(k) for k in others}
        if g not in groups:
            groups.append(g)
    return groups


def _in(point: Point, group: dict[str, Any]) -> bool:
    return all(point.coords.get(k) == v for k, v in group.items())


def cell_point(points: list[Point], metric: Metric) -> Point | None:
    """The point a cell shows: the best scored one; else one not run yet (blank); else n/a."""
    scored = [p for p in points if p.metric(metric.name) is not None]
    if scored:
        best = scored[0]
        for p in scored[1:]:
            if metric.better(p.metric(metric.name), best.metric(metric.name)):
                best = p
        return best
    return next((p for p in points if p.status == "missing"), points[0] if points else None)


def cells(sweep: Sweep, col: str, group: dict[str, Any], metric: Metric) -> dict[tuple[Any, Any], Point]:
    """(row, column) -> the point its cell shows, in one table."""
    out: dict[tuple[Any, Any], list[Point]] = {}
    for p in sweep.points:
        if _in(p, group):
            out.setdefault((p.coords.get(ROW), p.coords.get(col)), []).append(p)
    return {k: cell_point(v, metric) for k, v in out.items()}


def _fmt(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def auto_digits(values: list[float]) -> int:
    """The fewest decimals (1 to 4) that keep different values different."""
    distinct = set(values)
    return next((d for d in range(1, 5) if len({round(v, d) for v in distinct}) == len(distinct)), 4)


def _cell_text(p: Point | None, metric: Metric, digits: int, best_key: str | None) -> str:
    if p is None:
        return ""
    if p.status == "n/a":
        return "n/a"
    value = p.metric(metric.name)
    if value is None:
        return ""
    if metric.name == "fid":
        text = _fmt(value, digits)
        if (ci := p.interval()) is not None:
            text += f" [{_fmt(ci[0], digits)}, {_fmt(ci[1], digits)}]"
        if p.metric("fid_unseen") is not None:
            text += f" ({_fmt(p.metric('fid_unseen'), digits)})"
        if p.metric("class_accuracy") is not None:
            text += f"; acc {p.metric('class_accuracy'):.3f}"
    else:
        text = f"{value:.2f} dB"
        if p.metric("masked_token_accuracy") is not None:
            text += f"; acc {p.metric('masked_token_accuracy'):.3f}"
    if best_key is not None:
        steps = p.coords.get(best_key)
        text += f" @{p.coords.get('total_iter') if steps == -1 else steps}"
    return text


def markdown(sweep: Sweep, col: str, digits: int | None = None) -> str:
    done = sum(p.report is not None and p.status != "n/a" for p in sweep.points)
    planned = sum(p.status != "n/a" for p in sweep.points)
    metric = ranking_metric(sweep)
    best_key = best_of(sweep, col)
    if digits is None:
        digits = auto_digits([v for p in sweep.points for m in ("fid", "fid_unseen")
                              if (v := p.metric(m)) is not None])
    ckpts = {(p.report or {}).get("checkpoint") for p in sweep.points} - {None}
    na = len(sweep.points) - planned
    lines = [f"# FID sweep {sweep.dir.name}", "",
             f"{done}/{planned} points done" + (f" ({na} n/a by rule: sweet_spot > total_iter)" if na else "")
             + (f"; checkpoint `{ckpts.pop()}`" if len(ckpts) == 1 else "") + "."]
    if metric.name == "fid":
        lines.append("Cell: FID [its bootstrap 95% interval] (leak-free FID: test images whose ground truth "
                     "is in neither train nor val); acc: class consistency (generation per class); "
                     "**bold**: the lowest FID of the table; ~: its interval overlaps the lowest one's, so "
                     "the data cannot tell the two apart; blank: not run (yet); n/a: no such point.")
    else:
        lines.append("No FID in this sweep (metrics.fid.enabled=false). Cell: PSNR in the holes; acc: "
                     "masked-token accuracy; **bold**: the highest PSNR of the table; blank: not run "
                     "(yet); n/a: no such point.")
    if best_key is not None:
        lines.append(f"Each cell is its best {best_key} (@s: the sweet spot, steps run); "
                     f"{metric.name}_vs_{best_key}.png shows them all.")
    lines.append("")
    for group in table_groups(sweep, col):
        shown = cells(sweep, col, group, metric)
        scored = [p for p in shown.values() if p is not None and p.metric(metric.name) is not None]
        best_point = cell_point(scored, metric) if scored else None
        best = best_point.metric(metric.name) if best_point else None
        best_ci = best_point.interval() if best_point and metric.name == "fid" else None
        if group:
            lines += [f"## {', '.join(f'{k}={v}' for k, v in group.items())}", ""]
        columns = [c for c in sweep.values(col) if any(k[1] == c for k in shown)]
        lines.append(f"| {ROW} \\ {col} | " + " | ".join(str(c) for c in columns) + " |")
        lines.append("|---|" + "---:|" * len(columns))
        for row in [r for r in sweep.values(ROW) if any(k[0] == r for k in shown)]:
            texts = []
            for c in columns:
                p = shown.get((row, c))
                text = _cell_text(p, metric, digits, best_key)
                value = p.metric(metric.name) if p else None
                ci = p.interval() if p and metric.name == "fid" else None
                if value is not None and value == best:
                    text = f"**{text}**"
                elif ci is not None and best_ci is not None and ci[0] <= best_ci[1] and best_ci[0] <= ci[1]:
                    text = f"~{text}"
                texts.append(text)
            lines.append(f"| {row} | " + " | ".join(texts) + " |")
        lines.append("")
    return "\n".join(lines)


def csv_rows(sweep: Sweep) -> tuple[list[str], list[list[Any]]]:
    keys = list(dict.fromkeys([*AXES, *sweep.swept]))
    header = ["status", *keys, *METRICS, *(f"{t}_s" for t in TIMINGS), "decoded_now", "reused_from", "dir"]
    rows = []
    for p in sweep.points:
        r = p.report or {}
        rows.append([p.status, *(p.coords.get(k) for k in keys), *(p.metric(m) for m in METRICS),
                     *(p.seconds(t) for t in TIMINGS), r.get("decoded_now"), r.get("reused_from"),
                     str(p.dir.relative_to(sweep.dir)) if p.dir else None])
    return header, rows


Line = tuple[str, list[tuple[Any, Point]]]  # a label and its (x, point) pairs


def lines_over(sweep: Sweep, col: str) -> list[Line]:
    """One line per mask function (and table) against `col`, through the points the table's cells show."""
    metric = ranking_metric(sweep)
    out: list[Line] = []
    for group in table_groups(sweep, col):
        suffix = "".join(f", {k}={v}" for k, v in group.items())
        shown = cells(sweep, col, group, metric)
        for row in sweep.values(ROW):
            pts = sorted(((c, p) for (r, c), p in shown.items() if r == row and p is not None),
                         key=lambda xp: _order(xp[0]))
            out.append((f"{row}{suffix}", pts))
    return out


def sweet_spot_lines(sweep: Sweep, few: int = 3) -> list[Line]:
    """One line per mask function and T (the largest and up to `few` - 1 others spread below it)
    against the steps run; all T when they are `few` or fewer."""
    steps = {p.coords.get("total_iter") for p in sweep.points if p.report and p.status != "n/a"}
    many = sorted(t for t in steps if sum(p.coords.get("total_iter") == t and p.report is not None
                                         and p.status != "n/a" for p in sweep.points) > 1)
    chosen = many if len(many) <= few else sorted({many[round(i * (len(many) - 1) / (few - 1))]
                                                   for i in range(few)})
    out: list[Line] = []
    for row in sweep.values(ROW):
        for t in chosen:
            pts = [(t if p.coords.get(BEST_OF) == -1 else p.coords.get(BEST_OF), p) for p in sweep.points
                   if p.coords.get(ROW) == row and p.coords.get("total_iter") == t and p.status != "n/a"]
            out.append((f"{row}, T={t}", sorted(pts, key=lambda xp: _order(xp[0]))))
    return out


def plot(lines: list[Line], xlabel: str, value, ylabel: str, path: Path, band=None) -> Path:
    """`value(point)` along each line; `band(point)` -> (low, high) shades an interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, pairs in lines:
        pairs = [(x, p) for x, p in pairs if value(p) is not None]
        if not pairs:
            continue
        xs = [x for x, _ in pairs]
        (line,) = ax.plot(xs, [value(p) for _, p in pairs], marker="o", label=label)
        bands = [band(p) for _, p in pairs] if band else []
        if bands and all(b is not None for b in bands):
            ax.fill_between(xs, [b[0] for b in bands], [b[1] for b in bands], alpha=0.15,
                            color=line.get_color(), linewidth=0)
    if all(isinstance(x, int) for _, pairs in lines for x, _ in pairs):
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{ylabel} vs {xlabel}: sweep {path.parent.name}", fontsize="medium")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def build(sweep_dir: str | os.PathLike, cols: str = "auto", digits: int | None = None) -> dict[str, Path]:
    """Write the CSV, the Markdown table and the plots into the sweep folder; returns their paths."""
    from maskgit.utils.atomic import atomic_path

    sweep = read_sweep(sweep_dir)
    col = column_key(sweep, cols)
    out = {"csv": sweep.dir / "fid_table.csv", "markdown": sweep.dir / "fid_table.md"}
    header, rows = csv_rows(sweep)
    with atomic_path(out["csv"]) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows([["" if v is None else v for v in r] for r in rows])
    with atomic_path(out["markdown"]) as tmp:
        tmp.write_text(markdown(sweep, col, digits))
    metric = ranking_metric(sweep)
    value, label, band = ((lambda p: p.metric("fid"), "FID (95% interval shaded)", lambda p: p.interval())
                          if metric.name == "fid" else
                          (lambda p: p.metric("hole_psnr"), "PSNR in the holes (dB)", None))
    over_col = lines_over(sweep, col)
    out["fid_plot"] = plot(over_col, col, value, label, sweep.dir / f"{metric.name}_vs_{col}.png", band)
    if best_of(sweep, col):
        out["sweet_spot_plot"] = plot(sweet_spot_lines(sweep), "sweet_spot (steps run)", value, label,
                                      sweep.dir / f"{metric.name}_vs_{BEST_OF}.png", band)
    if any(p.metric("class_accuracy") is not None for p in sweep.points):
        out["accuracy_plot"] = plot(over_col, col, lambda p: p.metric("class_accuracy"),
                                    "class consistency (probe accuracy)",
                                    sweep.dir / f"class_accuracy_vs_{col}.png")
    out["decode_plot"] = plot(over_col, col, lambda p: p.seconds("decode"), "decode time (s)",
                              sweep.dir / f"decode_time_vs_{col}.png")
    return out


# -- wandb ---------------------------------------------------------------------------------------------

def wandb_settings(sweep: Sweep) -> dict[str, Any] | None:
    """Project and group of the points' wandb runs; None when they did not log to wandb."""
    for p in sweep.points:
        wandb_cfg = _select((p.report or {}).get("config", {}), "logger.wandb")
        if isinstance(wandb_cfg, dict):
            return {"project": wandb_cfg.get("project") or "maskgit",
                    "group": wandb_cfg.get("group") or sweep.dir.name}
    return None


def log_to_wandb(sweep_dir: str | os.PathLike, files: dict[str, Path], project: str, group: str) -> str:
    """One summary run in the sweep's group: the points table, the FID grid and the plots."""
    import wandb

    from maskgit.utils.loggers import wandb_has_credentials

    sweep = read_sweep(sweep_dir)
    mode = None if "WANDB_MODE" in os.environ or wandb_has_credentials() else "offline"
    run = wandb.init(project=project, group=group, name=f"fid-table-{sweep.dir.name}",
                     job_type="sweep-summary", dir=str(sweep.dir), mode=mode)
    try:
        header, rows = csv_rows(sweep)
        md = files["markdown"].read_text()
        fids = [p.metric("fid") for p in sweep.points if p.metric("fid") is not None]
        run.log({"sweep/points": points_table(header, rows),
                 "sweep/fid_table": wandb.Html(_markdown_to_html(md)),
                 **{f"sweep/{path.stem}": wandb.Image(str(path)) for path in files.values()
                    if path.suffix == ".png"}})
        if fids:
            run.summary["sweep/best_fid"] = min(fids)
        run.summary["sweep/points_done"] = sum(p.status in ("done", "reused") for p in sweep.points)
        run.summary["sweep/points_planned"] = sum(p.status != "n/a" for p in sweep.points)
        return run.dir
    finally:
        run.finish()


def points_table(header: list[str], rows: list[list[Any]]):
    """The points as a wandb.Table. A point not done yet has None metrics: wandb types a column
    from its first row and accepts None in it, not "" (a partial sweep raised TypeError)."""
    import wandb

    return wandb.Table(columns=header, data=[[_plain(v) for v in r] for r in rows])


def _plain(v: Any) -> Any:
    return v if v is None or isinstance(v, int | float | str) else str(v)


def _markdown_to_html(md: str) -> str:
    """The Markdown tables as HTML (headings and paragraphs as plain lines)."""
    import html
    import re

    out, in_table = [], False
    for line in md.splitlines():
        if line.startswith("|"):
            if set(line) <= set("|-: "):
                continue
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not in_table:
                out.append("<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in cells) + "</tr>")
                in_table = True
            else:
                out.append("<tr>" + "".join(
                    "<td>" + re.sub(r"\*\*(.+)\*\*", r"<b>\1</b>", html.escape(c)) + "</td>" for c in cells)
                    + "</tr>")
            continue
        if in_table:
            out.append("</table>")
            in_table = False
        if line.strip():
            out.append(f"<p>{html.escape(line.lstrip('# '))}</p>")
    if in_table:
        out.append("</table>")
    return "\n".join(out)


# -- command line -------------------------------------------------------------------------------------------

@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="maskgit-fid-table", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", help="the multirun folder of `python eval.py -m ...`")
    parser.add_argument("--cols", default="auto",
                        help="column key (auto: total_iter, else the first swept key, e.g. guidance)")
    parser.add_argument("--digits", type=int, default=None,
                        help="decimals of the FID values (default: the fewest, from 1, that tell them apart)")
    parser.add_argument("--wandb", choices=("auto", "on", "off"), default="auto",
                        help="summary run on wandb (auto: when the points logged to wandb)")
    args = parser.parse_args(argv)
    files = build(args.sweep_dir, args.cols, args.digits)
    for name, path in files.items():
        print(f"{name}: {path}")
    settings = wandb_settings(read_sweep(args.sweep_dir))
    if args.wandb == "on" or (args.wandb == "auto" and settings):
        settings = settings or {"project": "maskgit", "group": Path(args.sweep_dir).name}
        print(f"wandb: {log_to_wandb(args.sweep_dir, files, **settings)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
