"""The registry of solve routes: what each supports, and how ``auto`` picks among them.

A route turns an :class:`~formulations.model.ArrayModel` into a
:class:`~formulations.result.RouteResult`; it is registered with :func:`register` and asked
``supports(model)`` before use. Heavy backends import their libraries only when run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from formulations import conic, decomposition, waterfill
from formulations.cuts import CutOptions, solve_cuts
from formulations.model import ArrayModel
from formulations.result import RouteResult


@dataclass(frozen=True)
class SolveOptions:
    """Tolerances and limits of one solve.

    ``gap_tol``: a plan is optimal when ``0 <= bound - objective <= gap_tol x max(|objective|,
    1e-9 x budget)``; ``feas_tol``: the largest accepted rule violation as a fraction of the budget;
    ``time_limit``: seconds for the whole solve (each route gets what is left).
    """

    gap_tol: float = 1e-8
    feas_tol: float = 1e-9
    time_limit: float = 60.0


@dataclass(frozen=True)
class Backend:
    """A named route: ``supports(model)`` says whether it can solve the model exactly."""

    name: str
    description: str
    supports: Callable[[ArrayModel], bool]
    run: Callable[[ArrayModel, SolveOptions], RouteResult]


_REGISTRY: dict[str, Backend] = {}

#: Order in which ``backend="auto"`` tries the routes that support a model (Pyomo last: the same
#: tangent LP through another interface and refinement, a fallback when the HiGHS route stalls).
AUTO_ORDER: tuple[str, ...] = ("decomposition", "waterfill", "clarabel", "highs", "pyomo")
#: For models with ``pwl`` curves (e.g. the fit's family averages, tabulated as pwl): their pieces
#: are exact LP rows and the optimum sits at kinks, which HiGHS finds about 2.5x faster than
#: Clarabel. (Smooth curves keep Clarabel first: the cut route proves the objective to 1e-8, which
#: pins spends on flat-topped optima only to about 1e-4.)
AUTO_ORDER_PIECEWISE: tuple[str, ...] = ("decomposition", "waterfill", "highs", "clarabel", "pyomo")
_PIECEWISE = frozenset({"pwl"})
#: ``auto`` leaves out the conic route above this many cones (cells x samples): Clarabel's memory
#: grows without bound on such models (8 GB after 48 s at 120,000 cells) and it fails numerically
#: from about 30,000; the route can still be named explicitly.
AUTO_CONIC_LIMIT = 30_000


def register(backend: Backend) -> Backend:
    """Add a route to the registry (its name must be new)."""
    if backend.name in _REGISTRY:
        raise ValueError(f"backend {backend.name!r} is already registered")
    _REGISTRY[backend.name] = backend
    return backend


def get_backend(name: str) -> Backend:
    """The route called ``name``; ValueError listing the known names otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown backend {name!r}; choose 'auto' or one of {sorted(_REGISTRY)}") from None


def backend_names() -> list[str]:
    return sorted(_REGISTRY)


def candidates(model: ArrayModel, name: str) -> list[Backend]:
    """Routes to try for ``name`` (``auto``: every supporting route in :data:`AUTO_ORDER`, or
    :data:`AUTO_ORDER_PIECEWISE` when the model has pwl curves).

    A route named explicitly is returned even if it cannot solve the model; it then says why.
    """
    if name == "auto":
        piecewise = (model.revenue.families() | model.acquisitions.families()) & _PIECEWISE
        order = AUTO_ORDER_PIECEWISE if piecewise else AUTO_ORDER
        if waterfill.supports(model) and waterfill.closed_form(model):  # one price, closed-form responses
            order = ("waterfill", *(n for n in order if n != "waterfill"))
        return [b for b in (get_backend(n) for n in order)
                if b.supports(model) and not (b.name == "clarabel" and _conic_size(model) > AUTO_CONIC_LIMIT)]
    return [get_backend(name)]


def _conic_size(model: ArrayModel) -> int:
    """Cells times posterior samples: the number of cones the conic model would hold."""
    samples = max((next(iter(g.params.values())).shape[1] for g in model.revenue.groups
                   if g.family != "pwl"), default=1)
    return model.n * samples


def _run_cuts(model: ArrayModel, opts: SolveOptions) -> RouteResult:
    return solve_cuts(model, CutOptions(gap_tol=opts.gap_tol / 10, feas_tol=opts.feas_tol,
                                        time_limit=opts.time_limit))


def _run_pyomo(model: ArrayModel, opts: SolveOptions) -> RouteResult:
    from formulations.pyomo_model import solve_pyomo  # pyomo is slow to import; load on use

    return solve_pyomo(model, gap_tol=opts.gap_tol / 10, feas_tol=opts.feas_tol, time_limit=opts.time_limit)


register(Backend("decomposition", "exact Lagrangian decomposition: active-set Newton on the dual (smooth curves)",
                 decomposition.supports, lambda m, o: decomposition.solve_decomposition(m, time_limit=o.time_limit)))
register(Backend("waterfill", "closed-form water-filling (budget and cell bounds only)",
                 waterfill.supports, lambda m, o: waterfill.solve_waterfill(m)))
register(Backend("highs", "tangent cuts refined in HiGHS until the dual bound closes the gap",
                 lambda m: True, _run_cuts))
register(Backend("clarabel", "exact conic model in cvxpy solved by Clarabel (no logistic curves)",
                 conic.supports, lambda m, o: conic.solve_conic(m, time_limit=o.time_limit)))
register(Backend("pyomo", "the Pyomo model's tangent LP solved by HiGHS through Pyomo",
                 lambda m: True, _run_pyomo))
