"""The Lagrangian dual function: a bound anyone can check, and per-cell best responses.

For multipliers ``lam`` (budget), ``nu_min, nu_max >= 0`` (share rows) and ``mu >= 0`` (CLV/CAC
rows), all in the scaled units of :mod:`formulations.model`,

    g = sum_i max_{l_i <= y_i <= u_i} [ r_i(y_i) + mu_s(i) v_i(y_i) - p_i y_i ]
        + lam * B - sum_k nu_min_k lo_k + sum_k nu_max_k hi_k

with the cell price ``p_i = spend_cost + lam - nu_min_c(i) + nu_max_c(i) + mu_s(i)``, is an upper
bound on the optimal objective (weak duality; ``lam >= 0`` is required in ``at_most`` mode). Each
cell's term is a one-dimensional concave maximization; :func:`best_responses` solves all of them
at once by vectorized bisection on the derivative and returns a *rigorous* upper estimate of each
maximum (the concavity bound over the final bracket), so the returned ``g`` is a true bound up to
floating-point rounding, never an underestimate from an unconverged search.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

from formulations.model import ArrayModel

FloatArray = NDArray[np.float64]

_MAX_ROUNDS = 200  # bisection every third round: the bracket reaches float resolution well before


@dataclass(frozen=True)
class Multipliers:
    """Dual multipliers in scaled units (see module docstring). Shapes: (k,) shares, (m,) CLV."""

    budget: float
    share_min: FloatArray
    share_max: FloatArray
    clv: FloatArray

    def projected(self, equal_budget: bool) -> Multipliers:
        """The nearest valid multipliers: inequality multipliers clipped at 0."""
        return Multipliers(
            budget=self.budget if equal_budget else max(self.budget, 0.0),
            share_min=np.maximum(self.share_min, 0.0),
            share_max=np.maximum(self.share_max, 0.0),
            clv=np.maximum(self.clv, 0.0),
        )

    def scaled_by(self, factor: float) -> Multipliers:
        return Multipliers(self.budget * factor, self.share_min * factor, self.share_max * factor,
                           self.clv * factor)

    @staticmethod
    def zeros(model: ArrayModel) -> Multipliers:
        k, m = model.share_category.size, model.clv_segment.size
        return Multipliers(0.0, np.zeros(k), np.zeros(k), np.zeros(m))


def cell_prices(model: ArrayModel, mult: Multipliers) -> tuple[FloatArray, FloatArray]:
    """Per-cell price ``p_i`` on spend and weight ``mu_s(i)`` on acquisition value."""
    n_cat = len(model.categories)
    net_share = np.zeros(n_cat)
    np.add.at(net_share, model.share_category, mult.share_max - mult.share_min)
    weight = np.zeros(model.n)
    has_rule = model.clv_rule_of >= 0
    weight[has_rule] = mult.clv[model.clv_rule_of[has_rule]]
    price = model.spend_cost + mult.budget + net_share[model.category_of] + weight
    return price, weight


@dataclass(frozen=True)
class Responses:
    """The cells' best responses to prices and weights (see :func:`respond`).

    ``y``: maximizers (n,); ``upper`` (computed on first use: it needs every revenue curve's
    value): per-cell values provably >= each true maximum; ``interior``: cells strictly inside
    their bounds; ``curvature``: ``-(r'' + w v'')`` at ``y`` (> 0 for interior cells of strictly
    concave curves, 0 elsewhere) -- how fast ``y`` responds to its price (``dy/dp =
    -1/curvature``); ``dacq``: ``v'`` at ``y``; ``acq``: ``v`` at ``y`` (the scaled acquisition
    value of :meth:`ArrayModel.acq_value`; zeros when the model has no CLV/CAC rule).

    For a warm start of the next call (see :func:`respond`'s ``warm``): ``slope``, the slope
    ``L'`` at ``y`` (NaN where it was not evaluated at ``y``), ``raw_curvature``, ``-(r'' + w v'')``
    there, and the ``price`` and ``weight`` of this call.
    """

    y: FloatArray
    interior: NDArray[np.bool_]
    curvature: FloatArray
    dacq: FloatArray
    acq: FloatArray
    slope: FloatArray
    raw_curvature: FloatArray
    price: FloatArray
    weight: FloatArray
    bounds: Callable[[], FloatArray] = field(repr=False, compare=False)

    @cached_property
    def upper(self) -> FloatArray:
        """Per-cell values provably >= each cell's true maximum (see :func:`respond`)."""
        return self.bounds()


_NEWTON_ROUNDS = 100
#: Relative rounding allowance of one evaluated term (curve values to a few ulps, products, the
#: sample mean): added to every per-cell maximum and to the sum, so bounds stay rigorous.
TERM_ROUNDING = 64 * np.finfo(float).eps
#: A Newton step below this fraction of the spend is taken as the last one (the error left is of
#: order its square, far below what the rules' residuals can see), saving an evaluation round.
_SETTLE = 3e-8
_SETTLE_FLOOR = 1e-9  # spends (scaled, budget = 1) below this count as this for _SETTLE
_TINY = 1e-300  # a bracket [0, _TINY] (scaled spend) is as narrow as a bracket gets


def _closed_form_responses(model: ArrayModel, price: FloatArray, weight: FloatArray,
                           y: FloatArray) -> NDArray[np.bool_] | None:
    """Write into ``y`` the exact best responses of the unweighted cells whose revenue curve has
    a closed-form maximizer (:meth:`CurveBatch.argmax_at`), and of the weighted cells whose revenue
    and acquisition curves are both pwl (:func:`_pwl_pair_argmax`); the mask of those cells, or None."""
    weighted = weight > 0
    s = price * (model.value_scale / model.money_scale)  # the money slope of each cell's price
    x = model.revenue.argmax_at(s)
    free = ~weighted & ~np.isnan(x)
    both_pwl = weighted & model.revenue.pwl_mask() & model.acquisitions.pwl_mask()
    if both_pwl.any():
        cells = np.flatnonzero(both_pwl)
        # Acquisition value weight in money units: w coef v_scale / m_scale on new customers.
        a = weight[cells] * model.acq_value_coef[cells] * model.value_scale / model.money_scale
        x[cells] = _pwl_pair_argmax(model, cells, a, s[cells])
        free |= both_pwl
    if not free.any():
        return None
    y[free] = np.clip(x[free] / model.money_scale, model.lower[free], model.upper[free])
    return free


def _pwl_pair_argmax(model: ArrayModel, cells: NDArray[np.intp], a: FloatArray, s: FloatArray) -> FloatArray:
    """Maximizers (money) of ``R(x) + a Q(x) - s x`` over the cells' bounds, for cells whose revenue
    ``R`` and acquisitions ``Q`` are both pwl: the sum is a concave pwl, so a breakpoint of either
    curve or a bound maximizes it; every candidate is evaluated and the best one taken."""
    rx, rs, ri = model.revenue.pwl_rows(cells)
    qx, qs, qi = model.acquisitions.pwl_rows(cells)
    lo = model.lower[cells] * model.money_scale
    hi = model.upper[cells] * model.money_scale
    points = np.clip(np.hstack([rx, qx, lo[:, None], hi[:, None]]), lo[:, None], hi[:, None])
    rev = np.min(ri[:, None, :] + rs[:, None, :] * points[:, :, None], axis=2)
    acq = np.min(qi[:, None, :] + qs[:, None, :] * points[:, :, None], axis=2)
    value = rev + a[:, None] * acq - s[:, None] * points
    return np.take_along_axis(points, np.argmax(value, axis=1)[:, None], axis=1)[:, 0]


def _warm_slopes(model: ArrayModel, warm: Responses, price: FloatArray, weight: FloatArray,
                 known: NDArray[np.bool_], act: NDArray[np.intp], y: FloatArray, h: FloatArray, c: FloatArray,
                 dacq: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Slope and curvature of the cells ``act`` at ``y`` (the warm plan) under the new prices:
    from the warm call where it evaluated them at this ``y`` (``known``), else evaluated now.

    ``L' = r' + w v' - p`` is linear in ``p`` and ``w``, so the shift is exact; the curvature keeps
    the old weight's ``v''`` (it only sizes the Newton step)."""
    k = known[act]
    d = np.empty(act.size)
    ca = np.empty(act.size)
    ik = act[k]
    with np.errstate(invalid="ignore"):
        dw = weight[ik] - warm.weight[ik]
        shift = (warm.price[ik] - price[ik]) + np.where(dw != 0, dw * warm.dacq[ik], 0.0)
    d[k] = warm.slope[ik] + shift
    ca[k] = warm.raw_curvature[ik]
    dacq[ik] = warm.dacq[ik]
    rest = act[~k]
    if rest.size:
        _final_slopes(model, y, price, weight, bool(model.clv_segment.size), rest, h, c, dacq)
        d[~k], ca[~k] = h[rest], c[rest]
    return d, ca


def _slopes(model: ArrayModel, y: FloatArray, price: FloatArray, weight: FloatArray, with_acq: bool,
            cells: NDArray[np.intp], dacq: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Slope ``L'`` and curvature ``-(r'' + w v'')`` of ``cells`` at their spends ``y[cells]``;
    writes ``v'`` into ``dacq[cells]`` when ``with_acq``."""
    yc = y[cells]
    d1, d2 = model.rev_slopes_of(yc, cells)
    d = d1 - price[cells]
    if with_acq:
        a1, a2 = model.acq_slopes_of(yc, cells)
        dacq[cells] = a1
        wc = weight[cells]
        with np.errstate(invalid="ignore"):  # 0 weight x infinite slope at 0 counts as 0
            d = d + np.where(wc > 0, wc * a1, 0.0)
            d2 = d2 + np.where(wc > 0, wc * a2, 0.0)
    return d, -d2


def _final_slopes(model: ArrayModel, y: FloatArray, price: FloatArray, weight: FloatArray, with_acq: bool,
                  cells: NDArray[np.intp], h: FloatArray, c: FloatArray, dacq: FloatArray) -> None:
    """Write the slope ``h``, curvature ``c`` and ``v'`` of ``cells`` at their final spends."""
    h[cells], c[cells] = _slopes(model, y, price, weight, with_acq, cells, dacq)


def respond(model: ArrayModel, price: FloatArray, weight: FloatArray, start: FloatArray | None = None,
            warm: Responses | None = None) -> Responses:
    """Maximize ``L_i(y) = r_i(y) + weight_i v_i(y) - price_i y`` over ``[l_i, u_i]`` for every cell.

    Safeguarded Newton on the decreasing slope ``h = L'``: each cell keeps a bracket
    ``h(lo) > 0 > h(hi)`` and falls back to bisection when a Newton step leaves it or the curve is
    flat (linear and pwl pieces). ``start`` (e.g. the previous plan) makes repeated calls with
    nearby prices take a couple of rounds. Curves are evaluated only on unconverged cells.

    ``warm``: the responses of an earlier call on the same model; the search then starts at its
    plan, and its first round needs no curve evaluation -- the slope at the old plan under the new
    prices is the old slope plus the change in price and weight (``L'`` is linear in both).

    The per-cell ``upper`` is rigorous: by concavity ``max L <= L(y) + h(y) (hi - y)`` when
    ``h(y) > 0`` and ``L(y) - h(y) (y - lo)`` otherwise, with ``[lo, hi]`` the final bracket.
    """
    lower, upper_b = model.lower, model.upper
    n = model.n
    weighted = weight > 0
    # v' is evaluated wherever the model has CLV/CAC rules, weighted or not, so that a warm
    # start's slopes stay exact when a rule's weight moves away from 0.
    with_acq = bool(model.clv_segment.size)

    # The bracket starts as the bounds, whose slopes are unknown: a Newton target beyond a bound is
    # clamped to it, and the next round either stops there (the slope points outwards) or uses
    # the bound as a bracket end. No round is spent on cells that never reach a bound.
    lo, hi = lower.copy(), upper_b.copy()
    mid = 0.5 * (lower + upper_b)
    if warm is not None:
        start = warm.y
    y = mid if start is None else np.where((start >= lower) & (start <= upper_b), start, mid)
    exact = np.zeros(n, dtype=bool)  # h (and c) were evaluated at the current y
    h, c, dacq = np.zeros(n), np.zeros(n), np.zeros(n)
    at_lower, at_upper = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    step_prev = np.full(n, np.inf)
    jumped = np.zeros(n, dtype=bool)  # a flat cell was sent to a bound once
    tried_low, tried_up = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)  # Newton went to a bound
    prev_slope = np.full(n, np.inf)  # |slope| at the previous point of each cell's search
    down = np.zeros(n, dtype=np.intp)  # consecutive rounds whose slope pointed down
    settled = np.zeros(n, dtype=bool)  # moved by a final tiny Newton step, slope not yet known
    # The loop works on the compacted unsettled cells (``act``): after the first rounds only a
    # few remain, and no round pays for the settled ones. Suffix ``a``: values of ``act``.
    act = np.arange(n)
    # Cells with no acquisition weight and a closed-form inverse marginal need no search: their
    # best response is that inverse, clipped (exact by concavity); their slope is evaluated once
    # after the loop, with the settled cells'.
    free = _closed_form_responses(model, price, weight, y)
    if free is not None:
        settled |= free
        act = np.flatnonzero(~free)
        # A closed-form maximizer is exact (to rounding, which the bound's allowance covers): its
        # bracket is the point itself, so a pwl kink's one-sided slopes do not loosen the bound.
        lo[free] = y[free]
        hi[free] = y[free]
        # ... except where it underflowed towards 0 (an exponent near 1): the maximizer is then
        # somewhere below 2e-300, and the tangent there bounds the cell.
        tiny = free & (y <= 2 * _TINY) & (upper_b > 2 * _TINY)
        hi[tiny] = 2 * _TINY
    known = None
    if warm is not None:
        known = np.isfinite(warm.slope) & (y == warm.y)
    for round_ in range(_NEWTON_ROUNDS):
        if act.size == 0:
            break
        ya, pa = y[act], price[act]
        if round_ == 0 and known is not None:
            d, ca = _warm_slopes(model, warm, price, weight, known, act, y, h, c, dacq)  # type: ignore[arg-type]
        else:
            d, ca = _slopes(model, y, price, weight, with_acq, act, dacq)
        h[act], c[act] = d, ca
        exact[act] = True
        la, ua = lower[act], upper_b[act]
        loa = np.where(d > 0, ya, lo[act])
        hia = np.where(d <= 0, ya, hi[act])
        lo[act], hi[act] = loa, hia
        stop_up = (ya >= ua) & (d >= 0)
        stop_low = (ya <= la) & (d <= 0)
        flat = np.isfinite(d) & (np.abs(d) <= 1e-15 * (np.abs(pa) + np.abs(d + pa) + 1e-300))
        narrow = (hia - loa <= 4e-16 * np.abs(hia)) | (hia <= 2 * _TINY)
        # A bracket that shrank onto a bound never evaluated there: the cell sits at that bound.
        stop_up |= narrow & (d > 0) & (hia >= ua)
        stop_low |= narrow & (d <= 0) & (loa <= la)
        y[act[stop_up]] = ua[stop_up]
        low_only = stop_low & ~stop_up
        y[act[low_only]] = la[low_only]
        exact[act[(stop_up & (ya != ua)) | (low_only & (ya != la))]] = False  # snapped, not evaluated
        at_upper[act[stop_up]] = True
        at_lower[act[low_only]] = True
        keep = ~(stop_up | stop_low | flat | narrow)
        if not keep.any() or round_ == _NEWTON_ROUNDS - 1:
            break
        act, ya, d, ca = act[keep], ya[keep], d[keep], ca[keep]
        la, ua, loa, hia = la[keep], ua[keep], loa[keep], hia[keep]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            step = d / ca
            target = np.clip(ya + step, la, ua)
        # Newton while it stays in the bracket and at least halves its step (rtsafe); else
        # bisect -- Newton can cycle across a kink (pwl curves, cells meeting a bound).
        # One round settles a cell at its bound -- once per bound: a cell whose Newton steps
        # jump between its two bounds (the slope changes sign between them) bisects instead.
        at_low, at_up = (target == la) & ~tried_low[act], (target == ua) & ~tried_up[act]
        at_bound = at_low | at_up
        ok = (np.isfinite(target) & (ca > 0) & (target >= loa) & (target <= hia) & (target != ya)
              & ((np.abs(step) <= 0.5 * step_prev[act]) | at_bound))
        tried_low[act[ok & at_low]] = True
        tried_up[act[ok & at_up]] = True
        # A tiny step while the slope is still far from 0 and hardly falls is a crawl, not
        # convergence (Newton's slope shrinks quadratically): the curvature is concentrated near
        # 0 spend (an acquisition curve with p near 1); bisect.
        pk = price[act]
        steep = np.abs(d) > 1e-6 * (np.abs(pk) + np.abs(d + pk))
        crawl = steep & ~at_bound & (np.abs(step) < 1e-3 * np.maximum(np.abs(ya), _TINY)) \
            & (np.abs(d) > 0.5 * prev_slope[act])
        ok &= ~crawl
        # Bisect in proportion while the bracket spans orders of magnitude: a slope infinite at
        # 0 that falls only slowly (power or hill exponent near 1) can put the maximizer at
        # 1e-300, a thousand halvings away but ten proportional ones.
        # (Only after four steps down in a row: an ordinary bracket [0, u] halves as usual.)
        down[act] = np.where(d <= 0, down[act] + 1, 0)
        floor = np.maximum(loa, _TINY)
        proportional = (hia > 16.0 * floor) & ((loa > 0) | (down[act] >= 4))
        mid = np.where(proportional, np.sqrt(floor) * np.sqrt(hia), 0.5 * (loa + hia))
        # No curvature here (a straight curve or a pwl piece): try the bound the slope points
        # to, once; a straight curve stops there, a kinked one has a bracket to bisect.
        flat_jump = (ca == 0) & ~jumped[act] & np.where(d > 0, hia == ua, loa == la) & ~ok
        jump_to = np.where(d > 0, ua, la)
        flat_jump &= jump_to != ya
        jumped[act[flat_jump]] = True
        new_y = np.where(ok, target, np.where(flat_jump, jump_to, mid))
        prev_slope[act] = np.abs(d)
        step_prev[act] = np.abs(new_y - ya)
        y[act] = new_y
        exact[act] = False
        # A Newton step this small leaves an error of order step^2: take it and stop. The slope
        # at the new point is evaluated once, after the loop, for the bound and the curvature.
        done = ok & ~at_bound & ~steep & (np.abs(step) <= _SETTLE * np.maximum(np.abs(ya), _SETTLE_FLOOR))
        if done.any():
            settled[act[done]] = True
            act = act[~done]
            if act.size == 0:
                break
    if settled.any():
        _final_slopes(model, y, price, weight, with_acq, np.flatnonzero(settled), h, c, dacq)
        exact |= settled
    if free is not None:  # a closed-form response clipped to a bound sits there
        free_low = free & (y <= lower) & (h <= 0)
        at_lower |= free_low
        at_upper |= free & ~free_low & (y >= upper_b) & (h >= 0)
    interior = ~(at_lower | at_upper)
    acq = model.acq_value(y) if with_acq else np.zeros(n)

    def bounds() -> FloatArray:
        rev = model.rev(y)
        v = rev - price * y + weight * acq
        with np.errstate(invalid="ignore"):
            bound = np.where(h > 0, v + h * (hi - y), v - h * (y - lo))
            bound = np.where(interior, bound, v)
            # Rounding: each term is evaluated to a few ulps; the allowance keeps the bound above
            # the exact maximum whatever the cancellation between revenue and price terms.
            size = np.abs(rev) + np.abs(price * y) + np.abs(weight * acq)
            size = size + np.where(interior, np.abs(np.nan_to_num(h)) * (hi - lo), 0.0)
            bound = bound + TERM_ROUNDING * size
        bad = np.flatnonzero(~np.isfinite(bound))
        if bad.size:  # an infinite slope at y (0 spend, p < 1): bound by the bracket's other end
            bound[bad] = _far_end_bounds(model, y, lo, hi, h, price, weight, bad)
        return bound

    curv = np.where(interior & np.isfinite(c), c, 0.0)
    return Responses(y, interior, curv, dacq, acq, np.where(exact, h, np.nan), c, price, weight, bounds)


def _far_end_bounds(model: ArrayModel, y: FloatArray, lo: FloatArray, hi: FloatArray, h: FloatArray,
                    price: FloatArray, weight: FloatArray, cells: NDArray[np.intp]) -> FloatArray:
    """Upper bounds on the maxima of ``cells`` from the tangent at the end of their bracket
    away from ``y`` (where the maximizer lies): ``L(e) + max(-L'(e), 0) (e - y)`` with ``e = hi``
    when the slope at ``y`` points up, ``L(e) + max(L'(e), 0) (y - e)`` with ``e = lo`` otherwise.
    ``inf`` where that end is ``y`` itself or its tangent is infinite too."""
    up = h[cells] > 0
    end = np.where(up, hi[cells], lo[cells])
    full = y.copy()
    full[cells] = end
    where = np.zeros(model.n, dtype=bool)
    where[cells] = True
    with_acq = bool(model.clv_segment.size)
    dacq = np.zeros(model.n)
    slope, _ = _slopes(model, full, price, weight, with_acq, cells, dacq)
    acq = model.acq_value(full, where)[cells] if with_acq else 0.0
    rev = model.rev(full, where)[cells]
    value = rev - price[cells] * end + weight[cells] * acq
    width = np.abs(end - y[cells])
    with np.errstate(invalid="ignore"):
        bound = value + np.where(up, np.maximum(-slope, 0.0), np.maximum(slope, 0.0)) * width
        size = np.abs(rev) + np.abs(price[cells] * end) + np.abs(weight[cells] * acq) + np.abs(slope) * width
    bound = bound + TERM_ROUNDING * size
    return np.where(np.isfinite(bound) & (width > 0), bound, np.inf)


def best_responses(
    model: ArrayModel, price: FloatArray, weight: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Maximizers of ``r_i(y) + weight_i v_i(y) - price_i y`` on ``[l_i, u_i]`` and per-cell
    values provably >= the true maxima (see :func:`respond`)."""
    r = respond(model, price, weight)
    return r.y, r.upper


def bracket_root(slope, lo, hi, s_lo, s_hi, active):  # type: ignore[no-untyped-def]
    """Shrink brackets ``[lo, hi]`` with ``slope(lo) > 0 > slope(hi)`` around the root of the
    (decreasing) slope, for the ``active`` cells at once.

    Illinois false position with a bisection step every third round: superlinear on smooth
    curves, and a guaranteed halving for piecewise-linear ones whose slope is a step function.
    Stops when every active bracket certifies its maximum to ~1e-15 relative (see
    :func:`_concave_max_bound`) or after ``_MAX_ROUNDS`` rounds.
    """
    w_lo, w_hi = s_lo.copy(), s_hi.copy()  # Illinois weights (halved on repeated sides)
    last_side = np.zeros(lo.size, dtype=np.int8)
    for round_ in range(_MAX_ROUNDS):
        width = hi - lo
        slack = np.minimum(s_lo, -s_hi) * width
        scale = 1e-15 * (1.0 + np.abs(lo) + np.abs(hi))
        if not np.any(active & ~(slack <= scale) & (width > 4e-16 * (1.0 + hi))):
            break
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            secant = hi - w_hi * width / (w_hi - w_lo)
        mid = 0.5 * (lo + hi)
        use_secant = (round_ % 3 != 2) & np.isfinite(secant) & (secant > lo) & (secant < hi)
        x = np.where(use_secant, secant, mid)
        s_x = slope(x)
        go_up = active & (s_x > 0)
        go_down = active & ~(s_x > 0)
        lo, s_lo = np.where(go_up, x, lo), np.where(go_up, s_x, s_lo)
        hi, s_hi = np.where(go_down, x, hi), np.where(go_down, s_x, s_hi)
        w_hi = np.where(go_up & (last_side == 1), 0.5 * w_hi, np.where(go_down, s_x, w_hi))
        w_lo = np.where(go_down & (last_side == -1), 0.5 * w_lo, np.where(go_up, s_x, w_lo))
        last_side = np.where(go_up, 1, np.where(go_down, -1, last_side)).astype(np.int8)
    return lo, hi, s_lo, s_hi


def _concave_max_bound(lo, hi, v_lo, v_hi, s_lo, s_hi):  # type: ignore[no-untyped-def]
    """An upper bound on a concave function's maximum over ``[lo, hi]`` from the values and
    slopes at both ends: the lower of the two tangent bounds (each is valid by concavity)."""
    width = hi - lo
    with np.errstate(invalid="ignore"):
        from_lo = np.where(np.isfinite(s_lo), v_lo + np.maximum(s_lo, 0.0) * width, np.inf)
        from_hi = np.where(np.isfinite(s_hi), v_hi + np.maximum(-s_hi, 0.0) * width, np.inf)
    return np.minimum(from_lo, from_hi)


@dataclass(frozen=True)
class DualBound:
    """``value``: the Lagrangian bound (scaled); ``argmax``: the cells' best responses."""

    value: float
    argmax: FloatArray
    multipliers: Multipliers


def dual_bound(model: ArrayModel, mult: Multipliers, start: FloatArray | None = None) -> DualBound:
    """Evaluate the Lagrangian dual function at (projected) multipliers; see module docstring.

    ``start`` (e.g. the plan being certified) only speeds up the cells' searches.
    """
    mult = mult.projected(model.equal_budget)
    price, weight = cell_prices(model, mult)
    r = respond(model, price, weight, start)
    y, upper = r.y, r.upper
    terms = np.concatenate([[mult.budget * model.budget], -mult.share_min * model.share_lo,
                            mult.share_max * model.share_hi])
    value = float(upper.sum()) + float(terms.sum())
    size = float(np.abs(upper).sum()) + float(np.abs(terms).sum())
    value += (np.log2(upper.size + terms.size + 1) + 2) * TERM_ROUNDING * size
    if not np.isfinite(value):
        value = math.inf  # a bound that is not finite proves nothing
    return DualBound(value, y, mult)


def refine_multipliers(model: ArrayModel, mult: Multipliers, max_evaluations: int = 60) -> Multipliers:
    """Multipliers that lower the dual function, starting from ``mult`` (L-BFGS-B on ``g``).

    Backends return multipliers only as accurate as their own tolerances (an LP of tangent cuts
    returns the slope of a tangent, an interior-point method stops early). ``g`` is convex and its
    gradient is cheap -- the rule residuals at the cells' best responses -- so a few quasi-Newton
    steps make the bound tighter and the shadow prices accurate. Never returns multipliers with
    a worse (higher) bound than the input.
    """
    from scipy.optimize import minimize

    start = mult.projected(model.equal_budget)
    k, m = model.share_category.size, model.clv_segment.size
    has_rule = model.clv_rule_of >= 0

    def unpack(z: FloatArray) -> Multipliers:
        return Multipliers(float(z[0]), z[1 : 1 + k], z[1 + k : 1 + 2 * k], z[1 + 2 * k :])

    def g_and_grad(z: FloatArray) -> tuple[float, FloatArray]:
        mu = unpack(z)
        price, weight = cell_prices(model, mu)
        y, _ = best_responses(model, price, weight)
        acq = model.acq_value(y)
        value = float((model.rev(y) + weight * acq - price * y).sum())
        value += mu.budget * model.budget - float(mu.share_min @ model.share_lo) + float(mu.share_max @ model.share_hi)
        cat = model.category_sums(y)[model.share_category]
        clv = np.bincount(model.clv_rule_of[has_rule], weights=(acq - y)[has_rule], minlength=m)
        grad = np.concatenate([[model.budget - y.sum()], cat - model.share_lo, model.share_hi - cat, clv])
        return value, grad

    z0 = np.concatenate([[start.budget], start.share_min, start.share_max, start.clv])
    bounds = [(None if model.equal_budget else 0.0, None)] + [(0.0, None)] * (2 * k + m)
    res = minimize(g_and_grad, z0, jac=True, method="L-BFGS-B", bounds=bounds,
                   options={"maxfun": max_evaluations, "ftol": 1e-15, "gtol": 1e-13})
    candidate = unpack(res.x).projected(model.equal_budget)
    return candidate if dual_bound(model, candidate).value <= dual_bound(model, start).value else start
