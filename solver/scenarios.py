"""Named scenarios from the same model, and their comparison table.

A scenario is the plan's problem with changes (budget level, share overrides, CLV/CAC overrides,
curve stress, locked cells, a fixed category mix), solved by :func:`solver.solve.solve`; or the
status quo (``current_spend``) evaluated as given. Every variant is rebuilt through
:meth:`Problem.from_dict` (:mod:`solver.variants`), so an override that is malformed raises a
:class:`~formulations.errors.ProblemError` naming the scenario and the path; a scenario whose
rules conflict is a row with ``status: infeasible`` and the solver's message.

The file format (JSON or YAML) is documented in ``docs/scenarios.md``. Fixed category mixes
(the budget guide's, or a scenario's ``mix``) are evaluated twice:

- *as given*: every category's share fixed (share min = max = its mix share, replacing the plan's
  share rules); within each category the spend is distributed over its cells optimally (a
  re-solve with the category's share fixed), under the plan's cell bounds and CLV/CAC rules;
- *within a band*: share min / max = mix share -/+ ``band`` (default 5 points), re-optimized.

Categories the mix does not name (the budget guide has no advertising) are, with
``others: status_quo`` (the default), held at their status-quo share of spend while the mix's
shares are scaled to fill the rest; with ``others: zero`` they get nothing. The table's ``note``
says which.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from formulations.errors import ProblemError
from formulations.problem import Problem, read_structured_file
from formulations.validate import check_keys, label, number
from solver.backends import SolveOptions
from solver.formatting import pct
from solver.plans import RuleChecker, broken_rules, plan_metrics, solution_spend, status_quo_spend
from solver.resolve import resolve
from solver.sensitivity import binding_rules
from solver.solution import Solution
from solver.variants import edit, locked, stressed, with_budget, with_shares

#: The fixed mixes of the budget guide, over five categories (no advertising).
BUDGET_GUIDE: dict[str, dict[str, float]] = {
    "conservative": {"technology": 0.20, "content_creation": 0.35, "list_management": 0.20,
                     "human_resources": 0.20, "testing_optimization": 0.05},
    "aggressive growth": {"technology": 0.30, "content_creation": 0.25, "list_management": 0.30,
                          "human_resources": 0.10, "testing_optimization": 0.05},
    "content focused": {"technology": 0.15, "content_creation": 0.50, "list_management": 0.15,
                        "human_resources": 0.15, "testing_optimization": 0.05},
    "optimization heavy": {"technology": 0.25, "content_creation": 0.25, "list_management": 0.20,
                           "human_resources": 0.15, "testing_optimization": 0.15},
    "acquisition focused": {"technology": 0.20, "content_creation": 0.20, "list_management": 0.40,
                            "human_resources": 0.15, "testing_optimization": 0.05},
}
INCLUDES = ("plan", "status_quo", "budget_guide")
_FILE_KEYS = {"version", "include", "defaults", "scenarios"}
_DEFAULT_KEYS = {"band", "others"}
_SCENARIO_KEYS = {"name", "status_quo", "budget", "budget_factor", "budget_mode", "category_shares", "segments",
                  "stress", "lock", "mix", "band", "others", "mix_mode"}


@dataclass(frozen=True)
class Scenario:
    """One named scenario (see ``docs/scenarios.md``); ``spec`` holds its validated keys."""

    name: str
    spec: Mapping[str, Any] = field(default_factory=dict)
    where: str = ""


@dataclass(frozen=True)
class ScenarioResult:
    """One evaluated scenario: the problem it became, its solution (None for the status quo) and
    its plan's spend per cell (None when there is no plan)."""

    name: str
    kind: str
    problem: Problem
    status: str
    message: str = ""
    note: str = ""
    solution: Solution | None = None
    spend: np.ndarray | None = None


# --- reading ---------------------------------------------------------------------------------


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower().replace("&", ""))


def parse_scenarios(data: Mapping[str, Any], where: str = "scenarios file") -> tuple[list[Scenario], list[str]]:
    """Validate a scenarios document; returns (scenarios, built-in sets to include).

    Unknown keys, wrong types and out-of-range numbers raise ProblemError naming the path
    (``scenarios[2].stress[0].factor: ...``). References to categories, segments and cells are
    checked when the scenario is applied to a problem.
    """
    d = check_keys(data, _FILE_KEYS, where, required=("version",))
    if d["version"] != 1:
        raise ProblemError(f"{where}: version: expected 1, got {d['version']!r}")
    include = d.get("include", list(INCLUDES))
    if not isinstance(include, list) or any(i not in INCLUDES for i in include):
        raise ProblemError(f"{where}: include: expected a list drawn from {list(INCLUDES)}, got {include!r}")
    defaults = dict(check_keys(d.get("defaults") or {}, _DEFAULT_KEYS, f"{where}: defaults"))
    raw = d.get("scenarios", [])
    if not isinstance(raw, list):
        raise ProblemError(f"{where}: scenarios: expected a list")
    out = []
    for k, s in enumerate(raw):
        path = f"scenarios[{k}]"
        spec = dict(check_keys(s, _SCENARIO_KEYS, f"{where}: {path}", required=("name",)))
        name = label(spec.pop("name"), f"{path}.name")
        _validate(spec, path)
        out.append(Scenario(name, {**defaults, **spec}, path))
    names = [s.name for s in out]
    if len(set(names)) != len(names):
        raise ProblemError(f"{where}: scenario names must be unique, got {names}")
    return out, list(include)


def _validate(spec: Mapping[str, Any], path: str) -> None:
    if spec.get("status_quo") and set(spec) - {"status_quo"}:
        raise ProblemError(f"{path}: a status_quo scenario takes no other keys, got {sorted(set(spec) - {'status_quo'})}")
    if "budget" in spec and "budget_factor" in spec:
        raise ProblemError(f"{path}: give budget or budget_factor, not both")
    for key in ("budget", "budget_factor"):
        if key in spec:
            number(spec[key], f"{path}.{key}", minimum=0.0, strict=True)
    if "band" in spec:
        number(spec["band"], f"{path}.band", minimum=0.0, maximum=1.0)
    if spec.get("others", "status_quo") not in ("status_quo", "zero"):
        raise ProblemError(f"{path}.others: expected 'status_quo' or 'zero', got {spec['others']!r}")
    if spec.get("mix_mode", "both") not in ("as_given", "band", "both"):
        raise ProblemError(f"{path}.mix_mode: expected 'as_given', 'band' or 'both', got {spec['mix_mode']!r}")
    for key in ("category_shares", "segments"):
        value = spec.get(key, {})
        if not isinstance(value, Mapping) or any(v is not None and not isinstance(v, Mapping) for v in value.values()):
            raise ProblemError(f"{path}.{key}: expected an object of {{name: rule or null}}")
    for key in ("stress", "lock"):
        if not isinstance(spec.get(key, []), list):
            raise ProblemError(f"{path}.{key}: expected a list")
    for k, s in enumerate(spec.get("stress", [])):
        check_keys(s, {"category", "segment", "factor", "curve"}, f"{path}.stress[{k}]", required=("factor",))
        number(s["factor"], f"{path}.stress[{k}].factor", minimum=0.0, strict=True)
        if "category" not in s and "segment" not in s:
            raise ProblemError(f"{path}.stress[{k}]: give a category, a segment or both")
        if s.get("curve", "revenue") not in ("revenue", "acquisitions", "both"):
            raise ProblemError(f"{path}.stress[{k}].curve: expected revenue, acquisitions or both")
    for k, s in enumerate(spec.get("lock", [])):
        check_keys(s, {"category", "segment", "spend"}, f"{path}.lock[{k}]", required=("category", "segment", "spend"))
        if s["spend"] != "current":
            number(s["spend"], f"{path}.lock[{k}].spend", minimum=0.0)
    if "mix" in spec:
        mix = check_keys(spec["mix"], set(spec["mix"]) if isinstance(spec["mix"], Mapping) else set(), f"{path}.mix")
        total = sum(number(v, f"{path}.mix.{c}", minimum=0.0, maximum=1.0) for c, v in mix.items())
        if abs(total - 1.0) > 1e-6:
            raise ProblemError(f"{path}.mix: shares must add up to 1, got {total:g}")


def read_scenarios(path: str | Path) -> tuple[list[Scenario], list[str]]:
    """Read a scenarios file (JSON or YAML); errors name the file and the path in it."""
    return parse_scenarios(read_structured_file(path), where=str(path))


# --- building --------------------------------------------------------------------------------


def _cell_key(problem: Problem, category: str, segment: str, where: str) -> tuple[str, str]:
    if not any(c.key == (category, segment) for c in problem.cells):
        raise ProblemError(f"{where}: no cell ({category!r}, {segment!r}) in the problem")
    return (category, segment)


def _mix_shares(problem: Problem, mix: Mapping[str, float], others: str,
                where: str) -> tuple[dict[str, float], set[str], str]:
    """Each category's share under ``mix``, the categories the mix names, and the note on the
    categories it leaves out."""
    by_norm = {_norm(c): c for c in problem.categories}
    shares: dict[str, float] = {}
    for name, v in mix.items():
        if _norm(name) not in by_norm:
            raise ProblemError(f"{where}.mix.{name}: no such category; known: {list(problem.categories)}")
        shares[by_norm[_norm(name)]] = float(v)
    named = set(shares)
    rest = [c for c in problem.categories if c not in shares]
    if not rest:
        return shares, named, ""
    if others == "zero":
        return shares | {c: 0.0 for c in rest}, named, f"{', '.join(rest)} held at 0"
    current = status_quo_spend(problem)
    if current is None:
        raise ProblemError(f"{where}: others: status_quo needs current_spend on every cell; use others: zero")
    held = {c: float(sum(current[i] for i, cell in enumerate(problem.cells) if cell.category == c) / current.sum())
            for c in rest}
    scale = 1.0 - sum(held.values())
    note = (f"{', '.join(f'{c} held at its status-quo share {pct(v)}' for c, v in held.items())}; "
            f"the mix scaled to {pct(scale)}")
    return {c: v * scale for c, v in shares.items()} | held, named, note


def build(problem: Problem, scenario: Scenario) -> list[tuple[str, str, Problem, str]]:
    """The problems of one scenario: ``[(row name, kind, problem, note)]`` (two rows for a mix)."""
    s, where = scenario.spec, f"{scenario.where or scenario.name} ({scenario.name})"
    p = problem
    if "budget" in s or "budget_factor" in s:
        p = with_budget(p, float(s.get("budget", problem.budget * s.get("budget_factor", 1.0))))
    if "budget_mode" in s:
        p = edit(p, lambda d: d.update(budget_mode=s["budget_mode"]), where)
    if "category_shares" in s:
        p = with_shares(p, s["category_shares"], where)
    if "segments" in s:
        def merge(d: dict[str, Any]) -> None:
            for seg, rule in s["segments"].items():
                d["segments"][seg] = {**d["segments"].get(seg, {}), **rule} if rule is not None else None
            d["segments"] = {k: v for k, v in d["segments"].items() if v is not None}
        p = edit(p, merge, where)
    for k, st in enumerate(s.get("stress", [])):
        keys = [c.key for c in p.cells if st.get("category", c.category) == c.category
                and st.get("segment", c.segment) == c.segment]
        if not keys:
            raise ProblemError(f"{where}.stress[{k}]: no cell matches {dict(st)}")
        p = stressed(p, {key: float(st["factor"]) for key in keys}, st.get("curve", "revenue"), where)
    if s.get("lock"):
        spends = {}
        for k, lk in enumerate(s["lock"]):
            key = _cell_key(p, lk["category"], lk["segment"], f"{where}.lock[{k}]")
            value = lk["spend"]
            if value == "current":
                value = next(c.current_spend for c in p.cells if c.key == key)
                if value is None:
                    raise ProblemError(f"{where}.lock[{k}]: the cell has no current_spend")
            spends[key] = float(value)
        p = locked(p, spends, where)
    if "mix" not in s:
        return [(scenario.name, "custom", p, "")]
    shares, named, note = _mix_shares(p, s["mix"], s.get("others", "status_quo"), where)
    band = float(s.get("band", 0.05))
    rows = []
    if s.get("mix_mode", "both") in ("as_given", "both"):
        fixed = {c: {"min": v, "max": v} for c, v in shares.items()}
        rows.append((f"{scenario.name} (as given)", "mix as given", with_shares(p, fixed, where),
                     "; ".join(x for x in ("shares fixed, cells optimized within each category", note) if x)))
    if s.get("mix_mode", "both") in ("band", "both"):
        banded = {c: ({"min": max(v - band, 0.0), "max": min(v + band, 1.0)} if c in named else {"min": v, "max": v})
                  for c, v in shares.items()}
        rows.append((f"{scenario.name} (±{band * 100:g} pts)", "mix within band", with_shares(p, banded, where),
                     "; ".join(x for x in (f"shares within ±{band * 100:g} points of the mix", note) if x)))
    return rows


def builtin_scenarios(problem: Problem, include: Sequence[str] = INCLUDES) -> list[Scenario]:
    """The built-in scenarios: the plan itself, the status quo and the budget guide's mixes
    (those only when the problem has the guide's five categories)."""
    out = []
    if "plan" in include:
        out.append(Scenario("optimal plan", {}, "built-in"))
    if "status_quo" in include:
        out.append(Scenario("status quo", {"status_quo": True}, "built-in"))
    if "budget_guide" in include:
        known = {_norm(c) for c in problem.categories}
        for name, mix in BUDGET_GUIDE.items():
            if all(_norm(c) in known for c in mix):
                out.append(Scenario(name, {"mix": mix}, "budget guide"))
    return out


# --- evaluating -------------------------------------------------------------------------------


SolveAll = Callable[[Sequence[Problem]], list[Solution]]


def run_scenarios(problem: Problem, scenarios: Sequence[Scenario] | None = None,
                  include: Sequence[str] = INCLUDES, *, options: SolveOptions | None = None,
                  backend: str = "auto", solution: Solution | None = None,
                  solve_all: SolveAll | None = None) -> list[ScenarioResult]:
    """Evaluate the built-in scenarios in ``include`` followed by ``scenarios``, in order.

    ``solution``: the problem's own solution, if already solved (the ``optimal plan`` row reuses it).
    ``solve_all``: solves a list of problems and returns their solutions in order (e.g. fanned out
    over Dask, :func:`solver.distributed.compare_scenarios`); by default each is solved here with
    :func:`solver.resolve.resolve`. Every scenario's problem is built first, then all are solved.
    """
    rows: list[ScenarioResult | tuple[str, str, Problem, str, bool]] = []
    for sc in [*builtin_scenarios(problem, include), *(scenarios or [])]:
        if sc.spec.get("status_quo"):
            spend = status_quo_spend(problem)
            if spend is None:
                rows.append(ScenarioResult(sc.name, "status quo", problem, "skipped",
                                           "no current_spend on some cells"))
                continue
            broken = broken_rules(problem, spend)
            rows.append(ScenarioResult(sc.name, "status quo", problem, "evaluated",
                                       note="current spend as given" + ("; breaks " + "; ".join(broken) if broken else ""),
                                       spend=spend))
            continue
        plan = sc.where == "built-in"
        for name, kind, p, note in build(problem, sc):
            rows.append((name, "plan" if plan else kind, p, note, plan and solution is not None))
    pending = [r[2] for r in rows if isinstance(r, tuple) and not r[4]]
    if solve_all is not None:
        solved = iter(solve_all(pending))
    else:
        solved = iter([resolve(p, backend=backend, options=options) for p in pending])
    results = []
    for r in rows:
        if isinstance(r, ScenarioResult):
            results.append(r)
            continue
        name, kind, p, note, reuse = r
        sol = solution if reuse else next(solved)
        assert sol is not None
        spend = solution_spend(sol) if sol.allocation else None
        results.append(ScenarioResult(name, kind, p, sol.status.value, sol.message, note, sol, spend))
    return results


def scenario_table(results: Sequence[ScenarioResult], plan: Problem | None = None) -> pd.DataFrame:
    """The comparison table: one row per scenario result.

    Columns: ``scenario, kind, status, message, budget, spend, revenue, profit`` (currency),
    ``roi`` (revenue per dollar spent), ``new_customers``, ``revenue_vs_status_quo`` and
    ``profit_vs_status_quo`` (currency, NaN without a status quo), ``revenue_vs_status_quo_pct``
    (fraction), ``binding`` (the rules that bind; for the status quo, the rules it breaks are in
    ``note``), ``breaks_plan_rules`` (with ``plan``: the plan's rules, at the scenario's budget,
    that the scenario's spend breaks -- a mix replaces the plan's share rules, so it may beat the
    optimal plan only by breaking them), ``note`` (how the scenario was built), then
    ``cac_<segment>`` per segment. Metrics are evaluated on each scenario's own curves (a stressed
    scenario on stressed curves).
    """
    checkers: dict[float, RuleChecker] = {}

    def plan_breaks(budget: float, spend: np.ndarray) -> str:
        assert plan is not None
        if budget not in checkers:
            checkers[budget] = RuleChecker(plan if budget == plan.budget else with_budget(plan, budget))
        return ", ".join(checkers[budget].breaks(spend, short=True))

    rows = []
    for r in results:
        row: dict[str, Any] = {"scenario": r.name, "kind": r.kind, "status": r.status, "message": r.message,
                               "budget": r.problem.budget, "note": r.note}
        if r.spend is not None:
            m = plan_metrics(r.problem, r.spend)
            row |= {"spend": m.spend, "revenue": m.revenue, "profit": m.profit, "roi": m.roi,
                    "new_customers": m.new_customers}
            row |= {f"cac_{seg}": v for seg, v in m.cac.items()}
            if r.solution is not None and r.solution.is_optimal:
                row["binding"] = ", ".join(binding_rules(r.solution, r.problem))
            if plan is not None:
                row["breaks_plan_rules"] = plan_breaks(r.problem.budget, r.spend)
        rows.append(row)
    frame = pd.DataFrame(rows)
    base = ["scenario", "kind", "status", "message", "budget", "spend", "revenue", "profit", "roi", "new_customers",
            "revenue_vs_status_quo", "revenue_vs_status_quo_pct", "profit_vs_status_quo", "binding",
            "breaks_plan_rules", "note"]
    frame = frame.reindex(columns=base + [c for c in frame.columns if c not in base])
    sq = frame[frame["kind"] == "status quo"]
    if not sq.empty and sq["status"].iloc[0] == "evaluated":
        frame["revenue_vs_status_quo"] = frame["revenue"] - sq["revenue"].iloc[0]
        frame["revenue_vs_status_quo_pct"] = frame["revenue"] / sq["revenue"].iloc[0] - 1
        frame["profit_vs_status_quo"] = frame["profit"] - sq["profit"].iloc[0]
    return frame


def compare_scenarios(problem: Problem, scenarios: str | Path | Mapping[str, Any] | None = None, *,
                      options: SolveOptions | None = None, backend: str = "auto",
                      solution: Solution | None = None, solve_all: SolveAll | None = None) -> pd.DataFrame:
    """The comparison table for a scenarios file (path), a scenarios dict, or the built-ins only
    (``solve_all``: see :func:`run_scenarios`)."""
    return scenario_table(evaluate(problem, scenarios, options=options, backend=backend, solution=solution,
                                   solve_all=solve_all), problem)


def evaluate(problem: Problem, scenarios: str | Path | Mapping[str, Any] | None = None, *,
             options: SolveOptions | None = None, backend: str = "auto",
             solution: Solution | None = None, solve_all: SolveAll | None = None) -> list[ScenarioResult]:
    """:func:`run_scenarios` for a scenarios file (path), a scenarios dict, or the built-ins only."""
    if scenarios is None:
        return run_scenarios(problem, options=options, backend=backend, solution=solution, solve_all=solve_all)
    parsed, include = (read_scenarios(scenarios) if isinstance(scenarios, (str, Path))
                       else parse_scenarios(scenarios))
    return run_scenarios(problem, parsed, include, options=options, backend=backend, solution=solution,
                         solve_all=solve_all)
