"""Report figures: matplotlib (Agg backend) charts rendered to base64 PNG for inline HTML."""
from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")  # headless: the report is rendered without a display

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

PALETTE = ("#2f6fb3", "#e07b39", "#3c9d5d", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")


def _png(figure: plt.Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def pie(table: pd.DataFrame, label: str, value: str = "Count", title: str = "", top: int = 7) -> str:
    """A pie of `value` by `label`; slices past `top` are folded into "other"."""
    data = table[[label, value]].sort_values(value, ascending=False)
    if len(data) > top:
        rest = data.iloc[top:][value].sum()
        data = pd.concat([data.iloc[:top], pd.DataFrame({label: ["other"], value: [rest]})], ignore_index=True)
    figure, axes = plt.subplots(figsize=(4.2, 3.2))
    if data[value].sum() > 0:
        axes.pie(data[value], labels=None, colors=PALETTE[: len(data)], startangle=90, counterclock=False,
                 wedgeprops={"linewidth": 1, "edgecolor": "white"}, autopct=lambda p: f"{p:.0f}%" if p >= 5 else "")
        axes.legend([str(v) for v in data[label]], loc="center left", bbox_to_anchor=(1, 0.5), frameon=False,
                    fontsize=8)
    else:
        axes.text(0.5, 0.5, "no data", ha="center", va="center")
    axes.set_title(title, fontsize=10)
    axes.axis("equal")
    return _png(figure)


def bars(table: pd.DataFrame, x: str, y: str, title: str = "", horizontal: bool = False, color: str = PALETTE[0],
         xlabel: str = "", ylabel: str = "") -> str:
    """A bar chart of `y` by `x`."""
    figure, axes = plt.subplots(figsize=(6.4, 3.0))
    labels = [_label(v) for v in table[x]]
    if horizontal:
        axes.barh(labels, table[y], color=color)
        axes.invert_yaxis()
    else:
        axes.bar(labels, table[y], color=color)
        # Dates and long names overlap side by side long before there are many bars.
        if len(labels) > 8 or sum(len(label) for label in labels) > 40:
            axes.tick_params(axis="x", labelrotation=60, labelsize=7)
    axes.set_title(title, fontsize=10)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.spines[["top", "right"]].set_visible(False)
    return _png(figure)


def histogram(values: pd.Series, title: str = "", xlabel: str = "", bins: int = 30) -> str:
    """A histogram of numeric `values`."""
    figure, axes = plt.subplots(figsize=(6.4, 3.0))
    numbers = pd.to_numeric(values, errors="coerce").dropna()
    if len(numbers):
        axes.hist(numbers, bins=bins, color=PALETTE[0], edgecolor="white")
    else:
        axes.text(0.5, 0.5, "no data", ha="center", va="center", transform=axes.transAxes)
    axes.set_title(title, fontsize=10)
    axes.set_xlabel(xlabel)
    axes.spines[["top", "right"]].set_visible(False)
    return _png(figure)


def heatmap(table: pd.DataFrame, title: str = "", xlabel: str = "", ylabel: str = "") -> str:
    """A heat map of a numeric table (index = rows, columns = columns)."""
    figure, axes = plt.subplots(figsize=(8.0, 0.45 * max(len(table), 2) + 1.2))
    if table.size:
        image = axes.imshow(table.to_numpy(dtype=float), aspect="auto", cmap="Reds")
        figure.colorbar(image, ax=axes, fraction=0.03)
        axes.set_yticks(range(len(table.index)), [str(v) for v in table.index], fontsize=8)
        axes.set_xticks(range(len(table.columns)), [str(v) for v in table.columns], fontsize=7)
    else:
        axes.text(0.5, 0.5, "no failures", ha="center", va="center", transform=axes.transAxes)
    axes.set_title(title, fontsize=10)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    return _png(figure)


def _label(value: object) -> str:
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d")
    return str(value)
