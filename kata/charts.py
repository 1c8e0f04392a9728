"""Charts for the lab: curves and heatmaps drawn in the terminal as plain text, and the same saved as PNG.

The terminal charts are pure Python and look right without colour (NO_COLOR, a log file). The PNG functions
import matplotlib only when called, draw on a Figure without pyplot (no window, no global state) and write
the file under a temporary name before renaming it, so a picture is never left half written. They return
None when matplotlib is missing; NO_PICTURES is the one line the caller then says.

    line_chart({"train": [4.1, 3.2, 2.9], "val": [4.0, 3.5]}) -> a chart of 14 rows, 72 columns
    heatmap([[1.0, 0.0], [0.4, 0.6]], ["a", "b"], ["a", "b"]) -> one row of shade cells per matrix row
"""

import math
import os
from pathlib import Path

from .errors import UserError

MARKERS = "*o+x#@%&"
SHADES = " ·░▒▓█"   # from nothing to the largest value
NO_PICTURES = "the pictures need matplotlib: pip install -e '.[lab]'"
DPI = 100
LINES_INCHES = (8.0, 4.5)   # a loss curve is 800 x 450 pixels
CELL_INCHES = 2.4           # one head's attention map in the grid
MARK = "write-transformer course.py"   # in every PNG the course writes: its own pictures may be replaced


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _tick(v: float) -> str:
    """3 significant digits, without an exponent for ordinary losses: 4.5213 -> '4.52', 0.000123 -> '0.000123'."""
    return f"{v:.3g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"


def line_chart(series: dict[str, list[float]], width: int = 72, height: int = 14, title: str = "",
               x_label: str = "step", y_label: str = "loss", xs: dict[str, list[float]] | None = None) -> str:
    """Several curves overlaid, one marker per series, every line at most `width` characters.

    A series' points sit at x = 0, 1, 2, ... unless `xs` gives their positions (validation losses at the end of
    each epoch, among the steps' losses). Where many points fall into one column the column shows their mean;
    NaN and infinite values are left out, and a series without a finite value is named as such in the legend.
    """
    assert width >= 20 and height >= 3, "a chart needs at least 20 columns and 3 rows"
    points = {}
    for name, ys in series.items():
        where = (xs or {}).get(name) or range(len(ys))
        assert len(where) == len(ys), f"{name}: {len(where)} positions for {len(ys)} values"
        points[name] = [(float(x), float(y)) for x, y in zip(where, ys) if _finite(x) and _finite(y)]
    found = [p for pts in points.values() for p in pts]
    lines = [title[:width]] if title else []
    if not found:
        return "\n".join(lines + [f"(no {y_label} to draw yet)"])
    x_lo, x_hi = min(x for x, _ in found), max(x for x, _ in found)
    y_lo, y_hi = min(y for _, y in found), max(y for _, y in found)
    if y_hi == y_lo:  # one value (or one point): give it room above and below
        pad = abs(y_lo) * 0.1 or 0.5
        y_lo, y_hi = y_lo - pad, y_hi + pad
    ticks = sorted({round(k * (height - 1) / 4) for k in range(5)})  # top, bottom and three between
    labels = {i: _tick(y_hi - (y_hi - y_lo) * i / (height - 1)) for i in ticks}
    pad = max(len(s) for s in labels.values())
    cols = width - pad - 2
    grid = [[" "] * cols for _ in range(height)]
    for marker, pts in zip(MARKERS * len(points), points.values()):
        buckets: dict[int, list[float]] = {}
        for x, y in pts:
            col = 0 if x_hi == x_lo else round((x - x_lo) / (x_hi - x_lo) * (cols - 1))
            buckets.setdefault(col, []).append(y)
        for col, ys in buckets.items():
            row = round((y_hi - sum(ys) / len(ys)) / (y_hi - y_lo) * (height - 1))
            grid[row][col] = marker
    lines.append(f"{y_label[:pad + 1]:>{pad}}")
    for i, cells in enumerate(grid):
        lines.append(f"{labels.get(i, ''):>{pad}} {'+' if i in labels else '|'}{''.join(cells)}".rstrip())
    lines.append(" " * pad + " +" + "-" * cols)
    left, right = _tick(x_lo), _tick(x_hi)
    middle = f" {x_label} "
    gap = cols - len(left) - len(right)
    if gap >= len(middle):
        lines.append(" " * (pad + 2) + left + middle.center(gap) + right)
    else:
        lines.append(" " * (pad + 2) + left + " " * max(1, gap) + right)
    legend = "   ".join(f"{m} {name}" + ("" if points[name] else " (nothing finite)")
                       for m, name in zip(MARKERS * len(points), points))
    lines.append(" " * (pad + 2) + legend[:cols])
    return "\n".join(lines)


def heatmap(matrix, row_labels: list[str], col_labels: list[str], width: int = 80, label_width: int = 10) -> str:
    """A matrix of numbers at least 0 as shade characters, darkest (`█`) at its largest value.

    Rows are labelled on the left; columns by their number above (mod 100), since the labels of an attention
    map are the same tokens as its rows: row `3 ·the` is column 3. Each cell takes 1 to 3 characters, as
    many as `width` allows; a matrix too wide for even 1 each is refused.
    """
    values = [[float(v) for v in row] for row in matrix]
    n_rows, n_cols = len(values), len(values[0]) if values else 0
    assert n_rows == len(row_labels) and n_cols == len(col_labels), "one label per row and per column"
    room = width - label_width - 1
    assert n_cols <= room, f"{n_cols} columns do not fit in {width} characters"
    cell = max(1, min(3, room // max(1, n_cols)))
    top = max([v for row in values for v in row if math.isfinite(v)] + [0.0])
    head = " " * (label_width + 1) + "".join(f"{j % 100:<{cell}}" if cell > 1 else str(j % 10)
                                              for j in range(n_cols))
    lines = [head.rstrip()]
    for label, row in zip(row_labels, values):
        shades = ""
        for v in row:
            level = 0 if not math.isfinite(v) or top <= 0 else round(max(0.0, v) / top * (len(SHADES) - 1))
            shades += SHADES[level] * cell
        lines.append(f"{label[:label_width]:<{label_width}} {shades}".rstrip())
    lines.append(f"{'':<{label_width}} {SHADES[1]} small, {SHADES[-1]} {_tick(top)}"[:width])
    return "\n".join(lines)


def _matplotlib():
    """matplotlib's Figure, or None when it is not installed."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    return Figure


def written_by_course(path: Path) -> bool:
    """Whether a PNG carries the course's mark (matplotlib writes it in the header, before the pixels)."""
    with open(path, "rb") as f:
        head = f.read(4096)
    return head.startswith(b"\x89PNG") and b"Software\x00" + MARK.encode() in head


def _save(figure, path) -> Path:
    """Write the figure to `path` under a temporary name first; never over a file the course did not write."""
    path = Path(path)
    if path.exists() and not (path.is_file() and written_by_course(path)):
        raise UserError(f"{path} is not a picture the course wrote: move it away or choose another place")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        figure.savefig(temporary, format="png", dpi=DPI, metadata={"Software": MARK})
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def save_lines_png(series: dict[str, list[float]], path, title: str = "", x_label: str = "step",
                   y_label: str = "loss", xs: dict[str, list[float]] | None = None) -> Path | None:
    """The curves of line_chart as an 800 x 450 PNG; None when matplotlib is missing."""
    Figure = _matplotlib()
    if Figure is None:
        return None
    figure = Figure(figsize=LINES_INCHES, layout="constrained")
    axes = figure.add_subplot()
    for name, ys in series.items():
        where = (xs or {}).get(name) or range(len(ys))
        few = len(ys) <= 30  # a short series (one value per epoch) shows its points
        axes.plot(list(where), [y if _finite(y) else math.nan for y in ys], marker="o" if few else None,
                  label=name)
    axes.set(title=title, xlabel=x_label, ylabel=y_label)
    axes.grid(alpha=0.3)
    if series:
        axes.legend()
    return _save(figure, path)


def save_heatmap_grid_png(matrices, labels: list[str], path, title: str = "") -> Path | None:
    """matrices[layer][head] (each T x T) as one grid of heatmaps, the tokens on both axes; None without matplotlib.

    The picture is CELL_INCHES x CELL_INCHES per map at DPI, so its size follows from the grid's shape.
    """
    Figure = _matplotlib()
    if Figure is None:
        return None
    n_layers, n_heads = len(matrices), len(matrices[0])
    figure = Figure(figsize=(CELL_INCHES * n_heads, CELL_INCHES * n_layers), layout="constrained")
    grid = figure.subplots(n_layers, n_heads, squeeze=False)
    size = max(3, min(7, 160 / max(1, len(labels))))  # smaller letters for longer prompts
    for layer, row in enumerate(matrices):
        for head, matrix in enumerate(row):
            axes = grid[layer][head]
            axes.imshow([[float(v) for v in r] for r in matrix], cmap="viridis", vmin=0.0, vmax=1.0)
            axes.set_title(f"layer {layer}, head {head}", fontsize=8)
            axes.set_xticks(range(len(labels)), labels, rotation=90, fontsize=size)
            axes.set_yticks(range(len(labels)), labels, fontsize=size)
    if title:
        figure.suptitle(title)
    return _save(figure, path)
