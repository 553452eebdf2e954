"""The HTTP edge's data shapes: Pydantic response models and JSON Schemas of the request bodies.

Request bodies are *documented* here (OpenAPI) but validated by the product's own readers
(:meth:`formulations.problem.Problem.from_dict`, :func:`solver.planning.validate_plan`), so a bad
problem gets the same message over HTTP as from the CLI. Pydantic is used only at this edge.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, Field

from solver.service.store import RunRecord

RunStatus = Literal["queued", "running", "done", "failed"]

_NUMBER_OR_SAMPLES: dict[str, Any] = {
    "oneOf": [{"type": "number"}, {"type": "array", "items": {"type": "number"}, "minItems": 1}]}

CURVE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A response curve; `family` decides the parameters (see docs/problem-format.md). Any "
                   "parameter of a parametric family may be a list of posterior samples.",
    "required": ["family"],
    "properties": {
        "family": {"type": "string", "enum": ["log", "exp_saturation", "power", "michaelis_menten", "logistic",
                                              "hill", "linear", "pwl"]},
        **{p: _NUMBER_OR_SAMPLES for p in ("a", "b", "p", "alpha", "lam", "beta", "kappa", "slope", "scale")},
        "points": {"type": "array", "items": {"type": "array", "items": {"type": "number"}, "minItems": 2,
                                              "maxItems": 2}},
    },
    "additionalProperties": False,
}

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Problem file (version 1)",
    "description": "See docs/problem-format.md. Unknown keys are errors.",
    "required": ["version", "budget", "cells"],
    "properties": {
        "version": {"type": "integer", "enum": [1]},
        "name": {"type": "string"},
        "budget": {"type": "number", "exclusiveMinimum": 0},
        "budget_mode": {"type": "string", "enum": ["equal", "at_most"]},
        "objective": {"type": "string", "enum": ["revenue", "profit"]},
        "cells": {
            "type": "array", "minItems": 1,
            "items": {
                "type": "object",
                "required": ["category", "segment", "revenue"],
                "properties": {
                    "category": {"type": "string", "minLength": 1},
                    "segment": {"type": "string", "minLength": 1},
                    "revenue": CURVE_SCHEMA,
                    "acquisitions": CURVE_SCHEMA,
                    "min_spend": {"type": "number", "minimum": 0},
                    "max_spend": {"type": "number", "minimum": 0},
                    "current_spend": {"type": "number", "minimum": 0},
                },
                "additionalProperties": False,
            },
        },
        "category_shares": {"type": "object", "additionalProperties": {
            "type": "object", "properties": {"min": {"type": "number", "minimum": 0, "maximum": 1},
                                             "max": {"type": "number", "minimum": 0, "maximum": 1}},
            "additionalProperties": False}},
        "segments": {"type": "object", "additionalProperties": {
            "type": "object", "required": ["clv"],
            "properties": {"clv": {"type": "number", "exclusiveMinimum": 0},
                           "min_clv_cac_ratio": {"type": "number", "exclusiveMinimum": 0}},
            "additionalProperties": False}},
    },
    "additionalProperties": False,
}

PLAN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Plan file",
    "description": "The problem file's keys except `cells`, plus `periods` (see docs/problem-format.md).",
    "required": ["version", "budget", "periods"],
    "properties": {k: v for k, v in PROBLEM_SCHEMA["properties"].items() if k != "cells"} | {
        "periods": {"type": "number", "exclusiveMinimum": 0},
        "max_spend_vs_history": {"type": "number", "exclusiveMinimum": 0},
        "cell_bounds": {"type": "array", "items": {"type": "object", "required": ["category", "segment"]}},
    },
    "additionalProperties": False,
}

FIT_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Fit request",
    "required": ["history", "plan"],
    "properties": {
        "history": {"description": "The history: CSV text with a header line (period, category, segment, spend, "
                                   "revenue[, new_customers, ...]; see docs/data.md), or a list of row objects.",
                    "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]},
        "plan": PLAN_SCHEMA,
    },
    "additionalProperties": False,
}

SWEEP_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Sweep request",
    "required": ["problem", "budgets"],
    "properties": {
        "problem": PROBLEM_SCHEMA,
        "budgets": {"type": "array", "minItems": 1, "items": {"type": "number", "exclusiveMinimum": 0}},
    },
    "additionalProperties": False,
}


FRONTIER_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Frontier request",
    "required": ["problem"],
    "properties": {
        "problem": PROBLEM_SCHEMA,
        "budgets": {"type": "array", "minItems": 1, "items": {"type": "number", "exclusiveMinimum": 0}},
        "lo": {"type": "number", "exclusiveMinimum": 0, "description": "Lowest budget, as a fraction of the problem's."},
        "hi": {"type": "number", "exclusiveMinimum": 0, "description": "Highest budget, as a fraction of the problem's."},
        "points": {"type": "integer", "minimum": 1, "maximum": 200},
    },
    "additionalProperties": False,
}

SCENARIOS_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Scenarios request",
    "required": ["problem"],
    "properties": {
        "problem": PROBLEM_SCHEMA,
        "scenarios": {"type": "object", "description": "A scenarios file (docs/scenarios.md); omit for the built-ins."},
    },
    "additionalProperties": False,
}

REPORT_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Report request",
    "required": ["problem"],
    "properties": {
        "problem": PROBLEM_SCHEMA,
        "scenarios": {"type": "object", "description": "A scenarios file; omit for the built-ins."},
        "frontier_points": {"type": "integer", "minimum": 1, "maximum": 200},
        "check": {"type": "boolean", "description": "Re-solve to cross-check each binding rule's price."},
        "targets": {"type": "object", "additionalProperties": {"type": "number"}},
    },
    "additionalProperties": False,
}


def request_body(schema: dict[str, Any]) -> dict[str, Any]:
    """``openapi_extra`` documenting a JSON request body that the route reads itself."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


class ErrorOut(BaseModel):
    """Every error answer: one readable line."""

    detail: str = Field(description="What is wrong (for a bad problem: the CLI's message, naming the field).")


class RunCreated(BaseModel):
    """Answer to a submission (202): poll ``GET <collection>/{id}``."""

    id: str
    status: RunStatus


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    queued: int
    workers: int


class RunBase(BaseModel):
    """What every run reports: state, timings, and what is needed to reproduce it."""

    id: str
    kind: str
    status: RunStatus
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    attempts: int = Field(description="How many times a server started the run (more than 1 after a restart).")
    error: str | None = Field(description="Why the run failed (status `failed`).")
    options: dict[str, Any] | None = Field(default=None, description="Solve options used (backend, time_limit, gap_tol).")
    product_version: str | None = None
    versions: dict[str, str] | None = Field(default=None, description="Python and solver library versions.")


class SolveRun(RunBase):
    solution: dict[str, Any] | None = Field(description="The solution file (see docs/problem-format.md) when done.")


class FitRun(RunBase):
    problem: dict[str, Any] | None = Field(description="The fitted problem file when done.")
    fit_report: list[dict[str, Any]] | None = Field(description="Per-cell fit diagnostics when done.")


class SweepRun(RunBase):
    budgets: list[float] | None
    solutions: list[dict[str, Any]] | None = Field(description="One solution file per budget when done.")


class FrontierRun(RunBase):
    frontier: list[dict[str, Any]] | None = Field(description="One row per budget when done.")


class ScenariosRun(RunBase):
    scenarios: list[dict[str, Any]] | None = Field(description="The scenario comparison table when done.")


class ReportRun(RunBase):
    report: dict[str, Any] | None = Field(description="The JSON report (headline, solution, tables) when done.")


class RunSummary(BaseModel):
    id: str
    kind: str
    status: RunStatus
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    attempts: int
    error: str | None


class RunPage(BaseModel):
    """One page of the caller's runs, newest first."""

    items: list[RunSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


def _when(t: float | None) -> dt.datetime | None:
    return None if t is None else dt.datetime.fromtimestamp(t, dt.UTC)


def summary(r: RunRecord) -> RunSummary:
    return RunSummary(id=r.id, kind=r.kind, status=r.status, created_at=_when(r.created_at),  # type: ignore[arg-type]
                      started_at=_when(r.started_at), finished_at=_when(r.finished_at), attempts=r.attempts,
                      error=r.error)


def run_out(r: RunRecord) -> RunBase:
    """The full answer for a run of any kind."""
    base = summary(r).model_dump() | {"options": r.options, "product_version": r.product_version,
                                      "versions": r.versions}
    out = r.output if r.status == "done" else None
    if r.kind == "fit":
        return FitRun(**base, problem=out and out["problem"], fit_report=out and out["fit_report"])
    if r.kind == "sweep":
        budgets = (r.input or {}).get("budgets") if out is None else out["budgets"]
        return SweepRun(**base, budgets=budgets, solutions=out and out["solutions"])
    if r.kind == "frontier":
        return FrontierRun(**base, frontier=out and out["frontier"])
    if r.kind == "scenarios":
        return ScenariosRun(**base, scenarios=out and out["scenarios"])
    if r.kind == "report":
        return ReportRun(**base, report=out and out["report"])
    return SolveRun(**base, solution=out)
