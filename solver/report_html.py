"""The report as one self-contained HTML page (plotly.js inline: it opens with no network).

The first screen answers the two questions a planner asks: *what does the next dollar earn* and
*what does each rule cost* (exact, re-solved). Below: recommendations, allocation vs status quo by
category and segment, the budget frontier with its marginal revenue, the scenario comparison, the
shadow-price table, the response curve of every cell with its status-quo and optimal points, the
per-cell marginal values and, when the report carries the fit, the fit report (backtest, each
cell's curve with its data and interval bands, per-cell diagnostics). Everything is read from a
:class:`~solver.report.Report`.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from solver.formatting import money, pct, rate, signed_money
from solver.report import Report
from solver.summary import category_table, segment_table

PLAN, STATUS_QUO, ACCENT = "#1f6feb", "#9aa4b2", "#d9480f"
MAX_CURVES = 30
_CONFIG = {"displaylogo": False, "responsive": True}
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2733;background:#f6f8fa}
main{max-width:1180px;margin:0 auto;padding:20px}
h1{font-size:1.5rem;margin:.2rem 0}h2{font-size:1.15rem;margin:1.6rem 0 .5rem;border-bottom:1px solid #d0d7de}
.sub{color:#57606a;margin:.2rem 0 1rem}.cards{display:grid;grid-template-columns:1fr 1.6fr;gap:14px}
.card{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:14px 16px}
.big{font-size:2.1rem;font-weight:700;color:#1f6feb}.card h3{margin:0 0 .4rem;font-size:1rem}
.kpis{display:flex;gap:14px;margin:14px 0;flex-wrap:wrap}.kpi{background:#fff;border:1px solid #d0d7de;
border-radius:8px;padding:8px 14px}.kpi b{display:block;font-size:1.2rem}
table{border-collapse:collapse;font-size:.85rem;background:#fff;width:100%}
th,td{border:1px solid #d8dee4;padding:3px 7px;text-align:right}th{background:#eef1f4}
td:first-child,th:first-child{text-align:left}.text{text-align:left}
.ok{color:#1a7f37;font-weight:600}.bad{color:#cf222e;font-weight:600}details{margin:.5rem 0}
.note{font-size:.85rem;color:#57606a}
"""


def _e(x: Any) -> str:
    return html.escape(str(x))


def _fmt(value: Any, kind: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    formats = {"money": money, "rate": rate, "pct": pct, "signed": signed_money,
               "num": lambda v: f"{v:,.0f}", "text": str}
    return formats[kind](value) if kind != "text" else str(value)


def table_html(frame: pd.DataFrame, columns: dict[str, tuple[str, str]]) -> str:
    """An HTML table of ``frame`` with ``columns = {column: (header, format)}``."""
    text_th = '<th class="text">'
    head = "".join(f"{text_th if kind == 'text' else '<th>'}{_e(h)}</th>" for h, kind in columns.values())
    body = []
    for row in frame.to_dict("records"):
        cells = []
        for col, (_, kind) in columns.items():
            css = ' class="text"' if kind == "text" else ""
            cells.append(f"<td{css}>{_e(_fmt(row.get(col), kind))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _div(fig: go.Figure, height: int) -> str:
    fig.update_layout(height=height, margin={"l": 60, "r": 30, "t": 70, "b": 50}, template="plotly_white",
                      legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 0, "yref": "container"})
    return fig.to_html(full_html=False, include_plotlyjs=False, config=_CONFIG)


def allocation_figure(report: Report) -> str:
    """Spend by category and by segment: optimal plan vs status quo (grouped bars)."""
    sol, p = report.solution, report.problem
    cats, segs = category_table(sol), segment_table(sol, p)
    current = sol.allocation_frame().groupby("segment", sort=False)["current_spend"].sum(min_count=1)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Spend by category", "Spend by segment"))
    for col, (frame, now) in enumerate(((cats, cats["current_spend"]), (segs, current.reindex(segs.index))), 1):
        names = [str(i) for i in frame.index]
        fig.add_bar(x=names, y=now, name="status quo", marker_color=STATUS_QUO, showlegend=col == 1, row=1, col=col)
        fig.add_bar(x=names, y=frame["spend"], name="optimal plan", marker_color=PLAN, showlegend=col == 1,
                    row=1, col=col)
    fig.update_yaxes(tickprefix="$", tickformat=",.0f")
    return _div(fig, 400)


def frontier_figure(report: Report) -> str:
    """Optimal revenue against the budget, with the marginal revenue of the next dollar."""
    f = report.frontier[report.frontier["status"] == "optimal"]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_scatter(x=f["budget"], y=f["revenue"], name="optimal predicted revenue", mode="lines+markers",
                    line_color=PLAN)
    fig.add_scatter(x=f["budget"], y=f["marginal_revenue"], name="revenue of the next dollar", mode="lines",
                    line={"color": ACCENT, "dash": "dot"}, secondary_y=True)
    fig.add_vline(x=report.problem.budget, line_dash="dash", line_color="#57606a",
                  annotation_text="plan budget")
    best = report.headline.get("profit_max_budget")
    if best:
        fig.add_vline(x=best, line_dash="dot", line_color=ACCENT, annotation_text="next dollar earns $1",
                      annotation_position="bottom right")
    fig.update_xaxes(title="total budget", tickprefix="$", tickformat=",.0f")
    fig.update_yaxes(title="predicted revenue", tickprefix="$", tickformat=",.0f", secondary_y=False)
    fig.update_yaxes(title="revenue per extra budget dollar", tickprefix="$", secondary_y=True)
    return _div(fig, 420)


def scenario_figure(report: Report) -> str:
    """Predicted revenue per scenario (infeasible ones shown at 0 with their status)."""
    s = report.scenarios
    colors = [STATUS_QUO if k == "status quo" else (PLAN if st == "optimal" else "#cf222e")
              for k, st in zip(s["kind"], s["status"])]
    known = [isinstance(v, float) and math.isfinite(v) for v in s["revenue"]]
    text = [money(v) if ok else st for v, st, ok in zip(s["revenue"], s["status"], known)]
    fig = go.Figure(go.Bar(x=s["revenue"].fillna(0), y=s["scenario"], orientation="h", marker_color=colors,
                           text=text, textposition=["inside" if ok else "outside" for ok in known]))
    fig.update_xaxes(title="predicted revenue", tickprefix="$", tickformat=",.0f")
    fig.update_yaxes(autorange="reversed")
    return _div(fig, 120 + 28 * len(s))


def curves_figure(report: Report) -> str:
    """Response curve of each cell (the largest by spend), with status-quo and optimal points."""
    p, cells = report.problem, report.cells
    order = cells["spend"].to_numpy().argsort()[::-1][:MAX_CURVES]
    cols = 5
    rows = math.ceil(len(order) / cols)
    titles = [f"{cells['category'].iloc[i]} / {cells['segment'].iloc[i]}" for i in order]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, vertical_spacing=0.5 / rows,
                        horizontal_spacing=0.04)
    table = p.table
    for k, i in enumerate(order):
        r, c = k // cols + 1, k % cols + 1
        x_opt, x_now = float(cells["spend"].iloc[i]), cells["current_spend"].iloc[i]
        top = max(x_opt, float(x_now) if pd.notna(x_now) else 0.0) * 1.6 or 1.0
        top = min(top, float(cells["max_spend"].iloc[i])) if np.isfinite(cells["max_spend"].iloc[i]) else top
        xs = np.linspace(0.0, max(top, x_opt), 40)
        curve = table.revenue.curve(int(i))
        fig.add_scatter(x=xs, y=curve.value(xs), mode="lines", line={"color": "#57606a", "width": 1.5},
                        showlegend=False, row=r, col=c, hoverinfo="skip")
        if pd.notna(x_now):
            fig.add_scatter(x=[x_now], y=curve.value([x_now]), mode="markers", name="status quo",
                            marker={"color": STATUS_QUO, "size": 8}, showlegend=k == 0, row=r, col=c)
        fig.add_scatter(x=[x_opt], y=curve.value([x_opt]), mode="markers", name="optimal plan",
                        marker={"color": PLAN, "size": 8, "symbol": "diamond"}, showlegend=k == 0, row=r, col=c)
    fig.update_annotations(font_size=10)
    fig.update_xaxes(tickprefix="$", tickformat="~s", tickfont_size=9)
    fig.update_yaxes(tickprefix="$", tickformat="~s", tickfont_size=9)
    return _div(fig, 190 * rows + 60)


def _curves_note(report: Report) -> str:
    n = len(report.cells)
    shown = f"the {MAX_CURVES} cells with the largest optimal spend, of {n}" if n > MAX_CURVES else "every cell"
    return (f'<p class="note">Predicted revenue against spend for {shown}: grey dot the status quo, blue diamond '
            'the optimal plan. The slope at the diamond is the cell\'s marginal revenue (Cells table).</p>')


def fit_figure(report: Report) -> str:
    """Each fitted cell's revenue curve (the largest by optimal spend) with its history points
    (period-adjusted) and interval bands: the curve's own (parameter uncertainty) and a new
    period's (with noise), from :func:`forecasting.report.cell_plot_data`."""
    from forecasting.report import cell_plot_data

    assert report.fit is not None
    spend = dict(zip(zip(report.cells["category"], report.cells["segment"]), report.cells["spend"])) \
        if len(report.cells) else {}
    keys = [c.key for c in report.fit.cells if c.revenue is not None]
    keys = sorted(keys, key=lambda k: -float(spend.get(tuple(k), 0.0)))[:MAX_CURVES]
    cols = 5
    rows = max(math.ceil(len(keys) / cols), 1)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[f"{k[0]} / {k[1]}" for k in keys],
                        vertical_spacing=0.5 / rows, horizontal_spacing=0.04)
    for j, key in enumerate(keys):
        r, c = j // cols + 1, j % cols + 1
        d = cell_plot_data(report.fit, key)
        first = j == 0
        for low, high, name, color in (("pred_lower", "pred_upper", "new period's interval", "rgba(31,111,235,.10)"),
                                       ("lower", "upper", "curve's interval", "rgba(31,111,235,.25)")):
            fig.add_scatter(x=d.curve["spend"], y=d.curve[high], mode="lines", line={"width": 0}, showlegend=False,
                            hoverinfo="skip", row=r, col=c)
            fig.add_scatter(x=d.curve["spend"], y=d.curve[low], mode="lines", line={"width": 0}, fill="tonexty",
                            fillcolor=color, name=name, showlegend=first, hoverinfo="skip", row=r, col=c)
        fig.add_scatter(x=d.curve["spend"], y=d.curve["fitted"], mode="lines", line={"color": PLAN, "width": 1.5},
                        name=f"fitted curve ({d.info['status']})", showlegend=first, row=r, col=c)
        fig.add_scatter(x=d.points["spend"], y=d.points["adjusted"], mode="markers", text=d.points["period"],
                        marker={"color": "#24292f", "size": 4}, name="history (period-adjusted)",
                        showlegend=first, row=r, col=c)
    fig.update_annotations(font_size=10)
    fig.update_xaxes(tickprefix="$", tickformat="~s", tickfont_size=9)
    fig.update_yaxes(tickprefix="$", tickformat="~s", tickfont_size=9)
    fig.update_layout(legend={"orientation": "h", "y": 1.0 + 0.25 / rows, "yanchor": "bottom"})
    return _div(fig, 190 * rows + 90)


def _fit_section(report: Report) -> list[str]:
    """The fit report: backtest, per-cell curves with data and bands, per-cell diagnostics."""
    if report.fit is None:
        return []
    level = f"{report.fit.level:.0%}"
    cells = report.fit_cells
    return ["<h2>Response-curve fit</h2>",
            f'<p class="note">Held-out error of the fitted curves against naive forecasts (rolling origin: each '
            f'test period predicted from the periods before it), and the share of held-out outcomes inside the '
            f'{level} prediction intervals.</p>',
            table_html(report.fit_backtest, {"outcome": ("outcome", "text"), "method": ("method", "text"),
                                             "wape": ("WAPE", "pct"), "median_cell_wape": ("median cell WAPE", "pct"),
                                             "cells": ("cells", "num"), "coverage": ("interval coverage", "pct")}),
            f'<p class="note">Revenue per period against spend, at the level of an average period (seasonality and '
            f'trend divided out): history points, the fitted curve, its {level} band and a new period\'s {level} '
            'band. Pooled cells borrow from their category and segment (see the table).</p>',
            fit_figure(report),
            table_html(cells, {"category": ("category", "text"), "segment": ("segment", "text"),
                               "n_periods": ("periods", "num"), "status": ("status", "text"),
                               "revenue_family": ("revenue curve", "text"),
                               "revenue_holdout_mape": ("held-out MAPE", "pct"),
                               "revenue_holdout_wape": ("held-out WAPE", "pct"),
                               "revenue_coverage": ("interval coverage", "pct"),
                               "revenue_pooling_weight": ("pooling weight", "pct"),
                               "reason": ("why pooled / refused", "text"), "flags": ("flags", "text")})]


def _first_screen(report: Report) -> str:
    h, rules = report.headline, report.rules
    what = "profit" if h["objective_kind"] == "profit" else "predicted revenue"
    lo, hi = h.get("next_dollar_range", (float("nan"), float("nan")))
    valid = (f"It stays within 10% of that for any budget from {money(lo)} to {money(hi)} (proven on the frontier)."
             if math.isfinite(lo) and math.isfinite(hi) else "")
    best = h.get("profit_max_budget")
    more = (f" Up to a budget of <b>{money(best)}</b> each extra dollar still earns at least $1 of revenue."
            if best else "")
    binding = rules[rules["binding"] & ~rules["kind"].isin(["budget", "budget_row"])] if len(rules) else rules
    if len(binding) and "removal_gain" in binding:
        binding = binding.sort_values("removal_gain", ascending=False, na_position="last")
    cost_table = table_html(binding, {"limit": ("rule", "text"), "category": ("category", "text"),
                                      "segment": ("segment", "text"),
                                      "removal_gain": ("costs (exact, re-solved without it)", "money"),
                                      "shadow_price": ("per dollar of slack", "rate")})
    readings = "".join(f"<li>{_e(r)}</li>" for r in binding.get("reading", []))
    return f"""
<div class="cards">
 <div class="card"><h3>What does the next dollar earn?</h3>
  <div class="big">{_e(rate(h['next_dollar']))}</div>
  <div>of {what} per extra dollar of budget, at the {money(h['budget'])} plan (share rules scaling with the
  budget; {_e(rate(h['next_dollar_fixed_shares']))} with every share limit held in dollars). {valid}{more}</div>
 </div>
 <div class="card"><h3>What does each rule cost?</h3>{cost_table if len(binding) else '<p>No rule binds.</p>'}
  <details><summary>In words</summary><ul>{readings}</ul></details></div>
</div>"""


def _kpis(report: Report) -> str:
    h = report.headline
    items = [("optimal " + ("profit" if h["objective_kind"] == "profit" else "predicted revenue"),
              money(h["objective"])),
             ("proven upper bound", money(h["upper_bound"])), ("spend", money(h["spend"]))]
    if h.get("status_quo_revenue"):
        change = h["revenue"] / h["status_quo_revenue"] - 1
        items.append(("vs status quo revenue", f"{money(h['status_quo_revenue'])} ({change:+.1%})"))
    if h.get("status_quo_revenue_budget"):
        items.append(("budget that keeps today's revenue", money(h["status_quo_revenue_budget"])))
    return '<div class="kpis">' + "".join(f'<div class="kpi">{_e(k)}<b>{_e(v)}</b></div>' for k, v in items) + "</div>"


def render_html(report: Report) -> str:
    """The whole page as a string (see the module docstring)."""
    h = report.headline
    title = report.problem.name or "Budget allocation"
    status_css = "ok" if h["status"] == "optimal" else "bad"
    parts = [f"<h1>{_e(title)}</h1>",
             f'<p class="sub">Status: <span class="{status_css}">{_e(h["status"])}</span> '
             f'{_e(h.get("message") or "")} &middot; budget {money(h["budget"])} ({_e(h["budget_mode"])}) '
             f'&middot; {_e(h.get("backend") or "")}</p>']
    if h["status"] == "optimal":
        parts += [_first_screen(report), _kpis(report)]
        parts += ["<h2>Recommendations</h2>",
                  '<p class="note">Each move is applied after the ones above it; its gain is the exact difference '
                  'of predicted revenue between the plans before and after it.</p>',
                  table_html(report.recommendations, {"rank": ("#", "num"), "action": ("recommendation", "text"),
                                                      "objective_gain": ("gain", "signed"),
                                                      "cumulative_gain": ("cumulative", "signed"),
                                                      "still_breaks": ("rules still broken after it", "text")})]
        parts += ["<h2>Allocation vs status quo</h2>", allocation_figure(report)]
        parts += ["<h2>Budget frontier</h2>", '<p class="note">Every point is a certified optimum at that budget; '
                  'the dotted line is its slope, the revenue of the next dollar.</p>', frontier_figure(report)]
    parts += ["<h2>Scenarios</h2>", scenario_figure(report),
              table_html(report.scenarios, {"scenario": ("scenario", "text"), "status": ("status", "text"),
                                            "revenue": ("revenue", "money"), "profit": ("profit", "money"),
                                            "roi": ("revenue per $", "rate"), "new_customers": ("new customers", "num"),
                                            "revenue_vs_status_quo": ("vs status quo", "signed"),
                                            "binding": ("binding rules", "text"), "note": ("how it was built", "text"),
                                            "message": ("message", "text")})]
    if h["status"] == "optimal":
        parts += ["<h2>Shadow prices</h2>",
                  table_html(report.rules, {"limit": ("rule", "text"), "category": ("category", "text"),
                                            "segment": ("segment", "text"), "shadow_price": ("shadow price", "rate"),
                                            "removal_gain": ("exact cost", "money"),
                                            "resolve_price": ("re-solved price", "rate"),
                                            "binds_until": ("binds until relaxed by", "num"),
                                            "price_valid_up_to": ("price within 10% up to", "num")}),
                  "<h2>Response curves</h2>", _curves_note(report), curves_figure(report),
                  "<h2>Cells</h2>",
                  table_html(report.cells, {"category": ("category", "text"), "segment": ("segment", "text"),
                                            "spend": ("spend", "money"), "current_spend": ("status quo", "money"),
                                            "position": ("position", "text"),
                                            "marginal_revenue": ("marginal revenue", "rate"),
                                            "clv_credit": ("CLV/CAC credit", "rate"), "price": ("price", "rate"),
                                            "bound_dual": ("bound dual", "rate")})]
    parts += _fit_section(report)
    parts.append('<p class="note">How to read this report: docs/report.md in the budget-solver repository. All figures are predictions of the '
                 'fitted response curves; the optimum is proven by a Lagrangian bound.</p>')
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{_CSS}</style>'
            f'<script type="text/javascript">{get_plotlyjs()}</script></head><body><main>'
            + "\n".join(parts) + "</main></body></html>\n")


def write_html(report: Report, path: str | Path) -> Path:
    """Write :func:`render_html` to ``path``."""
    out = Path(path)
    out.write_text(render_html(report), encoding="utf-8")
    return out
