"""An independent checker of solution files: ``check_solution(problem, solution) -> CheckReport``.

A plan called ``optimal`` comes with a proof (the duals, and optionally a ``certificate``); an
``infeasible`` status with a Farkas-type ``infeasibility`` certificate. This module re-checks both
from the raw problem and solution dicts with its own code (:mod:`solver.check_curves`, numpy
only): it imports nothing of the solve path (no ``formulations.model``, ``formulations.lagrangian``
or ``forecasting.curves``), so a bug there cannot hide itself here. Formulas: ``docs/check.md``.

Each claim has a name, pass/fail and the numbers behind it:

- ``allocation``: every cell of the problem exactly once (category + segment), finite spends;
- ``cell bounds``, ``budget row``, ``category minimum shares``, ``category maximum shares``,
  ``CLV/CAC rules``: each rule on the plan, violation <= ``feas_tol * budget``;
- ``objective``, ``cell outcomes``: recomputed on the exact curves, to 1e-9 relative;
- ``dual signs``; ``Lagrangian bound``: the reported ``upper_bound`` is no smaller than the bound
  ``g`` that the duals prove (recomputed as a rigorous upper estimate);
- ``optimality gap`` (``optimal``): ``0 <= upper_bound - objective <= gap_tol * denominator`` and
  ``g - objective <= gap_tol * denominator``, denominator ``max(|objective|, 1e-9 budget)``;
- ``fixed cells``: each claim of ``certificate.fixed_cells`` follows from the rules;
- ``infeasibility proof`` (``infeasible``): the Farkas combination is negative everywhere;
- ``message``: non-empty for every status but ``optimal``.

Examples
--------
>>> problem = {"version": 1, "budget": 100.0, "cells": [
...     {"category": "ads", "segment": "all", "revenue": {"family": "linear", "a": 2.0}}]}
>>> solution = {"status": "optimal", "objective": 200.0, "upper_bound": 200.0, "duals": {"budget": 2.0},
...             "allocation": [{"category": "ads", "segment": "all", "spend": 100.0, "revenue": 200.0}]}
>>> check_solution(problem, solution).ok
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from formulations.problem import read_structured_file
from solver.check_curves import (EPS, TERM_ALLOWANCE, concave_max_bounds, CheckInputError, CheckProblem, cell_function,
                                 concave_max_upper, number, parse_problem)

__all__ = ["CheckInputError", "CheckReport", "Claim", "check_solution"]

DEFAULT_GAP_TOL, DEFAULT_FEAS_TOL = 1e-8, 1e-9
ROUNDING = 1e-12          # relative slack for comparisons of bounds computed two ways
VALUE_RTOL = 1e-9         # reported objective / cell outcomes vs recomputed
STATUSES = ("optimal", "infeasible", "time_limit", "error")


@dataclass(frozen=True)
class Claim:
    """One checked statement: ``name``, whether it holds, and the numbers behind it."""

    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.name}: {self.detail}"


@dataclass(frozen=True)
class CheckReport:
    """The outcome of :func:`check_solution`: ``ok`` when every claim holds."""

    status: str
    claims: tuple[Claim, ...]
    gap_tol: float
    feas_tol: float

    @property
    def ok(self) -> bool:
        return bool(self.claims) and all(c.ok for c in self.claims)

    @property
    def failures(self) -> tuple[Claim, ...]:
        return tuple(c for c in self.claims if not c.ok)

    def summary(self) -> str:
        """One line per claim (``ok  name: detail`` / ``FAIL name: detail``)."""
        return "\n".join(c.line() for c in self.claims)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "status": self.status, "gap_tol": self.gap_tol, "feas_tol": self.feas_tol,
                "claims": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.claims]}


# --------------------------------------------------------------------------------------------
# Inputs, multipliers and the Lagrangian bound
# --------------------------------------------------------------------------------------------

def _show(value: Any) -> str:
    """A reported value as written in the file (floats in full precision)."""
    return repr(float(value)) if isinstance(value, (int, float)) and not isinstance(value, bool) else repr(value)


def _loaded(source: Mapping[str, Any] | str | Path, what: str, parse: Callable[[Mapping[str, Any]], Any]) -> Any:
    """Read and parse one input; a CheckInputError is tagged with ``what`` (its ``source``)."""
    try:
        data = source if isinstance(source, Mapping) else read_structured_file(source)
        if not isinstance(data, Mapping):
            raise CheckInputError(f"{what}: expected an object, got {type(data).__name__}")
        return parse(data)
    except CheckInputError as e:
        e.source = what
        raise


def _tolerance(arg: float | None, sol: Mapping[str, Any], key: str, default: float) -> float:
    value = arg if arg is not None else sol.get(key) if sol.get(key) is not None else default
    try:
        return number(value, key, 0.0, strict=True)
    except CheckInputError as e:
        e.source = "solution" if arg is None else ""
        raise


@dataclass(frozen=True)
class _Multipliers:
    budget: float
    cmin: dict[str, float]
    cmax: dict[str, float]
    seg: dict[str, float]


def _read_multipliers(d: Any, pb: CheckProblem) -> tuple[_Multipliers | None, list[str]]:
    """The multipliers and every reason they are not a valid dual point (wrong sign, unknown name)."""
    if not isinstance(d, Mapping):
        return None, [f"expected an object, got {d!r}"]
    bad: list[str] = []
    lam = d.get("budget")
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not math.isfinite(lam):
        return None, [f"budget multiplier {lam!r} is not a finite number"]
    if not pb.equal and lam < 0:
        bad.append(f"budget {lam:.6g} < 0 in at_most mode")
    groups: dict[str, dict[str, float]] = {}
    categories, segments = {c.category for c in pb.cells}, {c.segment for c in pb.cells}
    for key, names in (("category_min", categories), ("category_max", categories), ("segment_clv_cac", segments)):
        raw = d.get(key) or {}
        groups[key] = {}
        for name, v in (raw.items() if isinstance(raw, Mapping) else [("?", raw)]):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or name not in names:
                bad.append(f"{key}[{name}] = {v!r} (needs a finite number and a known name)")
            elif v < 0:
                bad.append(f"{key}[{name}] = {v:.6g} < 0")
            elif key == "segment_clv_cac" and v > 0 and name not in pb.cap:
                bad.append(f"{key}[{name}] = {v:.6g} but segment {name} has no CLV/CAC rule")
            else:
                groups[key][name] = float(v)
    return _Multipliers(float(lam), groups["category_min"], groups["category_max"], groups["segment_clv_cac"]), bad


def _lagrangian_upper(pb: CheckProblem, m: _Multipliers, fixed: set[int], revenue: bool) -> float:
    """Rigorous upper estimate of ``sum_i max_{l_i <= x <= u_i} [r_i(x) - c x + mu v_i(x) - p_i x] + lam B
    - sum nu_min L B + sum nu_max U B`` (``revenue=False``: without ``r_i - c x``, the Farkas ``h``)."""
    return _lagrangian_bounds(pb, m, fixed, revenue)[1]


def _lagrangian_bounds(pb: CheckProblem, m: _Multipliers, fixed: set[int], revenue: bool) -> tuple[float, float]:
    """Rigorous lower and upper estimates of the Lagrangian dual function (see
    :func:`_lagrangian_upper`): any valid bound at these multipliers is at least the lower one."""
    c = 1.0 if (revenue and pb.profit) else 0.0
    lows, highs = [], []
    for i, cell in enumerate(pb.cells):
        mu = m.seg.get(cell.segment, 0.0)
        price = c + m.budget - m.cmin.get(cell.category, 0.0) + m.cmax.get(cell.category, 0.0) + mu
        w = mu * pb.cap.get(cell.segment, 0.0)
        f = cell_function(cell.revenue if revenue else None, cell.acquisitions, price, w)
        low, high = concave_max_bounds(f, cell.lo, cell.lo if i in fixed else cell.hi)
        lows.append(low)
        highs.append(high)
    B = pb.budget
    const = [m.budget * B] + [-v * pb.share(k)[0] * B for k, v in m.cmin.items()] \
        + [v * pb.share(k)[1] * B for k, v in m.cmax.items()]
    allowance = TERM_ALLOWANCE * math.fsum(abs(t) for t in const)
    low, high = math.fsum(lows + const), math.fsum(highs + const)
    return low - allowance - 2 * EPS * abs(low), high + allowance + 2 * EPS * abs(high)


# --------------------------------------------------------------------------------------------
# Claims
# --------------------------------------------------------------------------------------------

def _fixed_cells(pb: CheckProblem, sol: Mapping[str, Any]) -> tuple[list[Claim], set[int]]:
    cert = sol.get("certificate")
    if cert is None or (isinstance(cert, Mapping) and not cert.get("fixed_cells")):
        return [], set()
    entries = cert.get("fixed_cells", []) if isinstance(cert, Mapping) else None
    if not isinstance(entries, list):
        return [Claim("fixed cells", False, "certificate.fixed_cells is not a list")], set()
    B, index = pb.budget, {(c.category, c.segment): i for i, c in enumerate(pb.cells)}
    mins: dict[str, float] = {}
    for c in pb.cells:
        mins[c.category] = mins.get(c.category, 0.0) + c.lo
    fixed, bad = set(), []
    for k, e in enumerate(entries):
        e = e if isinstance(e, Mapping) else {}
        i, by, rule = index.get((e.get("category"), e.get("segment"))), e.get("by"), e.get("rule")
        cell = pb.cells[i] if i is not None else None
        spend = e.get("spend")
        if cell is None or not isinstance(spend, (int, float)) or abs(spend - cell.lo) > ROUNDING * B:
            bad.append(f"[{k}] {e.get('category')}/{e.get('segment')}: no such cell or spend is not its min_spend")
            continue
        if by == "category_max" and rule == cell.category and cell.category in pb.shares:
            ok = pb.shares[rule][1] * B <= mins[rule] + ROUNDING * B
        elif by == "budget" and rule == cell.category:
            others = math.fsum(max(pb.share(q)[0] * B, v) for q, v in mins.items() if q != rule)
            ok = B - others <= mins[rule] + ROUNDING * B
        elif by == "segment_clv_cac" and rule == cell.segment and rule in pb.cap:
            members = [c for c in pb.cells if c.segment == rule]
            at = [(c.acquisitions, np.array([c.lo])) for c in members]
            slopes = [pb.cap[rule] * float(q.slope(x)[0]) for q, x in at]  # type: ignore[union-attr]
            slack = math.fsum(pb.cap[rule] * float(q.value(x)[0]) - x[0] for q, x in at)  # type: ignore[union-attr]
            ok = max(slopes) <= 1.0 and slack <= 1e-9 * B
        else:
            ok = False
        if ok:
            fixed.add(i)
        else:
            bad.append(f"[{k}] {cell.category}/{cell.segment} by {by!r} rule {rule!r} does not follow from the rules")
    detail = f"{len(fixed)} of {len(entries)} claims verified" + ("; " + "; ".join(bad[:5]) if bad else "")
    return [Claim("fixed cells", not bad, detail)], fixed


def _plan(pb: CheckProblem, sol: Mapping[str, Any]) -> tuple[Claim, np.ndarray | None]:
    alloc, index = sol.get("allocation"), {(c.category, c.segment): i for i, c in enumerate(pb.cells)}
    x, bad = np.full(len(pb.cells), np.nan), []
    for k, row in enumerate(alloc if isinstance(alloc, list) else []):
        row = row if isinstance(row, Mapping) else {}
        i, spend = index.get((row.get("category"), row.get("segment"))), row.get("spend")
        if i is None or not np.isnan(x[i]):
            bad.append(f"allocation[{k}] {row.get('category')}/{row.get('segment')}: unknown or repeated cell")
        elif isinstance(spend, bool) or not isinstance(spend, (int, float)) or not math.isfinite(spend):
            bad.append(f"allocation[{k}]: spend {spend!r} is not a finite number")
        else:
            x[i] = float(spend)
    missing = [f"{c.category}/{c.segment}" for c, v in zip(pb.cells, x) if np.isnan(v)]
    if missing and not bad:
        bad.append(f"{len(missing)} cell(s) missing, e.g. {', '.join(missing[:3])}")
    if bad:
        return Claim("allocation", False, "; ".join(bad[:5])), None
    return Claim("allocation", True, f"{len(pb.cells)} cells, each once, finite spends"), x


def _rule_claims(pb: CheckProblem, x: np.ndarray, tol: float) -> list[Claim]:
    """Each rule kind on the plan: the worst violation (currency) against ``tol``, failures named."""
    total, B = math.fsum(x), pb.budget
    cats: dict[str, list[float]] = {}
    segs: dict[str, list[tuple[float, float]]] = {}
    for c, v in zip(pb.cells, x):
        cats.setdefault(c.category, []).append(v)
        if c.segment in pb.cap:
            q = float(c.acquisitions.value(np.array([v]))[0])  # type: ignore[union-attr]
            segs.setdefault(c.segment, []).append((v, pb.cap[c.segment] * q))
    kinds = {
        "cell bounds": {f"{c.category}/{c.segment}": max(c.lo - v, v - c.hi, 0.0) for c, v in zip(pb.cells, x)},
        "budget row": {"budget": abs(total - B) if pb.equal else max(total - B, 0.0)},
        "category minimum shares": {k: pb.shares[k][0] * B - math.fsum(cats[k]) for k in pb.shares},
        "category maximum shares": {k: math.fsum(cats[k]) - pb.shares[k][1] * B for k in pb.shares},
        "CLV/CAC rules": {s: math.fsum(a for a, _ in v) - math.fsum(b for _, b in v) for s, v in segs.items()},
    }
    out = []
    for kind, viol in kinds.items():
        if not viol:
            continue
        worst = max(viol, key=lambda k: viol[k])
        broken = [f"{k} by {v:.6g}" for k, v in viol.items() if not v <= tol]
        what = f"|sum - budget| = {viol[worst]:.3g}" if kind == "budget row" and pb.equal else \
            f"worst violation {max(viol[worst], 0.0):.3g} ({worst})"
        detail = f"{what} <= {tol:.3g}" if not broken else f"violated: {'; '.join(broken[:5])} (tolerance {tol:.3g})"
        out.append(Claim(kind, not broken, detail))
    return out


def _value_claims(pb: CheckProblem, sol: Mapping[str, Any], x: np.ndarray) -> tuple[list[Claim], float]:
    rev = [float(c.revenue.value(np.array([v]))[0]) for c, v in zip(pb.cells, x)]
    obj = math.fsum(rev) - (math.fsum(x) if pb.profit else 0.0)
    floor = 1e-9 * pb.budget
    typical_rev = math.fsum(abs(r) for r in rev) / max(len(rev), 1)
    reported = sol.get("objective")
    ok = isinstance(reported, (int, float)) and abs(reported - obj) <= VALUE_RTOL * max(abs(obj), floor)
    claims = [Claim("objective", bool(ok), f"reported {_show(reported)}, recomputed {obj!r} (rel. tolerance 1e-09)")]
    rows = {(r.get("category"), r.get("segment")): r for r in sol.get("allocation", []) if isinstance(r, Mapping)}
    bad = []
    customers = {i: float(c.acquisitions.value(np.array([v]))[0])
                 for i, (c, v) in enumerate(zip(pb.cells, x)) if c.acquisitions is not None}
    typical_customers = math.fsum(abs(q) for q in customers.values()) / max(len(customers), 1)
    for i, (c, v, r) in enumerate(zip(pb.cells, x, rev)):
        row = rows[(c.category, c.segment)]
        # Each outcome to 1e-9 of itself or of a typical cell's (a value near 0 has no relative accuracy).
        checks = [("revenue", r, typical_rev)]
        if i in customers and "new_customers" in row:
            checks.append(("new_customers", customers[i], typical_customers))
        for key, value, typical in checks:
            got = row.get(key)
            if not isinstance(got, (int, float)) or not abs(got - value) <= VALUE_RTOL * max(abs(value), typical):
                bad.append(f"{c.category}/{c.segment} {key} {got!r} vs {value:.12g}")
    claims.append(Claim("cell outcomes", not bad, "; ".join(bad[:5]) if bad else
                        f"every cell's revenue{' and new customers' if pb.cap else ''} within 1e-09 relative"))
    return claims, obj


def _optimality_claims(pb: CheckProblem, sol: Mapping[str, Any], obj: float | None, g: float | None,
                       gap_tol: float) -> list[Claim]:
    ub, rep = sol.get("upper_bound"), sol.get("objective")
    if not isinstance(ub, (int, float)) or not isinstance(rep, (int, float)) or not math.isfinite(ub):
        return [Claim("optimality gap", False,
                      f"optimal needs a finite upper_bound and objective, got {_show(ub)}, {_show(rep)}")]
    denom = max(abs(rep), 1e-9 * pb.budget)
    limit, gap = gap_tol * denom, ub - rep
    claims = [Claim("optimality gap", 0.0 <= gap <= limit,
                    f"upper_bound - objective = {gap:.3g}, needs 0 <= gap <= {limit:.3g} (gap_tol {gap_tol:.3g})")]
    if g is not None and obj is not None:
        proven = g - obj
        claims.append(Claim("duals prove the gap", proven <= limit + ROUNDING * denom,
                            f"g - objective = {proven:.3g} <= {limit:.3g}"))
    got, dn, absolute = sol.get("gap"), sol.get("gap_denominator"), sol.get("gap_abs")
    if got is not None or dn is not None or absolute is not None:
        rel = gap / denom

        def close(v: Any, want: float, atol: float) -> bool:
            return isinstance(v, (int, float)) and abs(v - want) <= 1e-9 * abs(want) + atol

        ok_rel = close(got, rel, 1e-15)
        legacy = dn is None and close(got, gap, ROUNDING * denom)    # before gap_denominator: gap was absolute
        ok = (ok_rel or legacy) and (dn is None or close(dn, denom, 0.0)) \
            and (absolute is None or close(absolute, gap, 0.0))
        note = " (legacy absolute gap = upper_bound - objective)" if legacy and not ok_rel else ""
        claims.append(Claim("gap fields", ok, f"gap {_show(got)}, expected (ub - obj) / {denom:.6g} = {rel:.3g}"
                                              f"{note}; gap_denominator {_show(dn)}, gap_abs {_show(absolute)}"))
    return claims


def _infeasibility_claim(pb: CheckProblem, sol: Mapping[str, Any], fixed: set[int]) -> Claim:
    cert = sol.get("infeasibility")
    if not isinstance(cert, Mapping):
        return Claim("infeasibility proof", False, "infeasible without a proof (no 'infeasibility' certificate)")
    m, bad = _read_multipliers(cert.get("multipliers"), pb)
    if m is None or bad:
        return Claim("infeasibility proof", False, "invalid multipliers: " + "; ".join(bad[:5]))
    h = _lagrangian_upper(pb, m, fixed, revenue=False)
    rules = ", ".join(map(str, cert.get("rules") or [])) or "?"
    return Claim("infeasibility proof", h < 0.0, f"max of the multiplied rule slacks h <= {h:.6g} (reported "
                                                 f"{_show(cert.get('bound'))}), needs < 0; rules: {rules}")


def check_solution(problem: Mapping[str, Any] | str | Path, solution: Mapping[str, Any] | str | Path,
                   gap_tol: float | None = None, feas_tol: float | None = None) -> CheckReport:
    """Re-check a solution file against its problem file, independently of the solve path.

    Parameters
    ----------
    problem, solution
        The problem file (version 1) and the solution file, as dicts or paths (JSON, YAML, TOML).
    gap_tol, feas_tol
        Relative optimality gap and rule tolerance (a fraction of the budget). ``None``: the
        solution's own ``gap_tol`` / ``feas_tol`` when present, else 1e-8 and 1e-9.

    Returns
    -------
    CheckReport
        One :class:`Claim` per statement checked; ``ok`` when every claim holds.

    Raises
    ------
    CheckInputError
        The problem or solution is malformed (the message names the key).
    formulations.errors.ProblemFileError
        A file cannot be read or parsed (the message names the file).
    """
    pb, sol = _loaded(problem, "problem", parse_problem), _loaded(solution, "solution", lambda d: d)
    gap_tol, feas_tol = (_tolerance(arg, sol, key, default) for arg, key, default in
                         ((gap_tol, "gap_tol", DEFAULT_GAP_TOL), (feas_tol, "feas_tol", DEFAULT_FEAS_TOL)))
    status = sol.get("status")
    claims = [] if status in STATUSES else [Claim("status", False, f"unknown status {status!r}")]
    header = [f"{k} {sol[k]!r} vs problem {v!r}" for k, v in
              (("budget", pb.budget), ("objective_kind", "profit" if pb.profit else "revenue"))
              if k in sol and sol[k] != v]
    if header:
        claims.append(Claim("solution matches problem", False, "; ".join(header)))
    fixed_claims, fixed = _fixed_cells(pb, sol)
    claims += fixed_claims
    obj = None
    if sol.get("allocation") or status == "optimal":
        alloc_claim, x = _plan(pb, sol)
        claims.append(alloc_claim)
        if x is not None:
            claims += _rule_claims(pb, x, feas_tol * pb.budget)
            value_claims, obj = _value_claims(pb, sol, x)
            claims += value_claims
    g = None
    if sol.get("duals") is not None or status == "optimal":
        m, bad = _read_multipliers(sol.get("duals"), pb)
        claims.append(Claim("dual signs", m is not None and not bad, "; ".join(bad[:5]) or "all valid"))
        if m is not None and not bad:
            g_low, g = _lagrangian_bounds(pb, m, fixed, revenue=True)
            ub = sol.get("upper_bound")
            if isinstance(ub, (int, float)) or status == "optimal":
                # A valid bound at these duals is at least the dual function's value, which is at
                # least g_low (a value some cell spends reach).
                ok = isinstance(ub, (int, float)) and math.isfinite(g) and ub >= g_low
                claims.append(Claim("Lagrangian bound", ok, f"reported upper_bound {_show(ub)} {'>=' if ok else '<'} "
                                                            f"{g_low!r}, the least value of the dual function "
                                                            f"at the duals (at most {g!r})"))
    if status == "optimal":
        claims += _optimality_claims(pb, sol, obj, g, gap_tol)
    elif status == "infeasible":
        claims.append(_infeasibility_claim(pb, sol, fixed))
    if status != "optimal":
        msg = sol.get("message")
        claims.append(Claim("message", isinstance(msg, str) and bool(msg.strip()), repr(msg)))
    return CheckReport(str(status), tuple(claims), float(gap_tol), float(feas_tol))
