"""kata/charts.py: the terminal charts as text, and the PNGs (size, not blank, written only where allowed)."""

import math
import sys

import pytest

from kata import charts
from kata.errors import UserError


def plot_rows(chart: str) -> list[str]:
    """The rows of the plotting area: those with an axis mark after the tick labels."""
    return [line for line in chart.splitlines() if line.lstrip()[:1] not in ("", "*", "o") and
            ("+" in line[:12] or "|" in line[:12]) and "---" not in line]


def test_a_falling_curve_starts_on_the_top_row_and_ends_on_the_bottom_row():
    chart = charts.line_chart({"train": [4.0, 3.0, 2.0, 1.0]}, width=40, height=8)
    rows = plot_rows(chart)
    assert len(rows) == 8, chart
    assert rows[0].rstrip().split("+", 1)[1].startswith("*"), f"the first value is the highest:\n{chart}"
    assert rows[-1].rstrip().endswith("*"), f"the last value is the lowest, at the right end:\n{chart}"
    assert rows[0].lstrip().startswith("4") and rows[-1].lstrip().startswith("1"), f"the ticks span 1..4:\n{chart}"


def test_two_series_of_different_lengths_have_their_own_markers_and_a_legend():
    chart = charts.line_chart({"train": [3.0 - i / 50 for i in range(100)], "val": [2.9, 2.5]},
                              xs={"val": [49, 99]}, width=72, height=10, title="loss")
    assert chart.splitlines()[0] == "loss"
    assert "* train" in chart and "o val" in chart, chart
    assert sum(line.count("o") for line in plot_rows(chart)) == 2, f"val has exactly two points:\n{chart}"
    assert "99" in chart.splitlines()[-2], f"the x range ends at the last step:\n{chart}"


@pytest.mark.parametrize("series", [{"a": [1.5]}, {"a": [1.0, math.nan, math.inf, 2.0]}, {"a": [2.0] * 5},
                                    {"a": [1.0] * 1000, "b": [0.5]}])
def test_odd_curves_still_draw_within_the_width(series):
    chart = charts.line_chart(series, width=60, height=6)
    assert max(len(line) for line in chart.splitlines()) <= 60, chart
    assert "*" in "\n".join(plot_rows(chart)), f"the finite values are drawn:\n{chart}"
    assert "nan" not in chart and "inf" not in chart, chart


def test_a_curve_without_a_finite_value_says_so():
    assert "no loss" in charts.line_chart({"a": [math.nan]})


def test_heatmap_is_darkest_at_the_largest_value_and_blank_at_zero():
    text = charts.heatmap([[1.0, 0.0], [0.5, 0.5]], ["0 a", "1 b"], ["a", "b"], width=30)
    rows = text.splitlines()
    assert rows[1].startswith("0 a") and rows[1][11:14] == charts.SHADES[-1] * 3, text
    assert rows[1][14:].strip() == "", f"zero attention is blank:\n{text}"
    middle = charts.SHADES[round(0.5 * (len(charts.SHADES) - 1))]
    assert rows[2][11:17] == middle * 6, text
    assert max(len(r) for r in rows) <= 30


def test_heatmap_refuses_more_columns_than_fit():
    with pytest.raises(AssertionError):
        charts.heatmap([[0.0] * 100], ["x"], ["y"] * 100, width=80)


def pixels(path):
    image = pytest.importorskip("matplotlib.image").imread(str(path))
    return image


def test_loss_png_has_its_size_is_not_blank_and_leaves_no_temporary_file(tmp_path):
    pytest.importorskip("matplotlib")
    path = charts.save_lines_png({"train": [3.0, 2.0, 1.5], "val": [2.5]}, tmp_path / "loss_curve.png",
                                 xs={"val": [2]}, title="loss")
    assert path == tmp_path / "loss_curve.png"
    image = pixels(path)
    assert image.shape[:2] == (450, 800), image.shape
    assert image[..., :3].var() > 1e-3, "the picture is not one flat colour"
    assert [p.name for p in tmp_path.iterdir()] == ["loss_curve.png"]


def test_heatmap_grid_png_has_one_cell_per_layer_and_head(tmp_path):
    pytest.importorskip("matplotlib")
    maps = [[[[1.0, 0.0], [0.3, 0.7]]] * 3] * 2   # 2 layers x 3 heads
    path = charts.save_heatmap_grid_png(maps, ["a", "b"], tmp_path / "attention.png", title="attention")
    image = pixels(path)
    size = round(charts.CELL_INCHES * charts.DPI)
    assert image.shape[:2] == (2 * size, 3 * size), image.shape
    assert image[..., :3].var() > 1e-3


def test_the_course_replaces_its_own_picture_but_not_someone_elses(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "loss_curve.png"
    charts.save_lines_png({"a": [1.0, 2.0]}, path)
    assert charts.written_by_course(path)
    charts.save_lines_png({"a": [2.0, 1.0]}, path)  # the course's own: replaced without a word
    path.write_bytes(b"\x89PNG someone else's picture")
    with pytest.raises(UserError, match="not a picture the course wrote"):
        charts.save_lines_png({"a": [1.0]}, path)
    assert path.read_bytes() == b"\x89PNG someone else's picture"


def test_without_matplotlib_nothing_is_written_and_none_comes_back(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    assert charts.save_lines_png({"a": [1.0]}, tmp_path / "a.png") is None
    assert charts.save_heatmap_grid_png([[[[1.0]]]], ["a"], tmp_path / "b.png") is None
    assert list(tmp_path.iterdir()) == []
    assert "pip install" in charts.NO_PICTURES
