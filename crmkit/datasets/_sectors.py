"""Synthetic sample data for the sector presets: an insurer, a securities broker, a
tobacco retail network (the customers are shops) and a community elderly-care service.

:func:`make_sector` maps each sector's entities onto the canonical tables
(:data:`crmkit.schema.TABLES`), adding free attribute columns where the sector
needs them:

- ``insurer``: policies are ``holdings`` with ``renewal_date`` (end of the current
  term) and ``premium`` (annual); premiums paid and claims are ``transactions``
  (``channel`` ``"premium"`` or ``"claim"``, claims negative); customers carry
  ``segment`` and ``key_account``; complaints carry ``impact`` and ``difficulty``
  (1-3); executive visits are ``contacts`` of kind ``"executive_visit"``.
- ``broker``: brokerage and fund accounts are ``holdings`` with month-end
  ``balances``; trades are ``transactions`` with ``commission``; customers carry
  ``club``, ``loyalty_points`` and 40 profile fields ``profile_01`` ... (the
  adviser's data-completeness measure counts them).
- ``tobacco_retail``: shops are ``customers`` with ``retail_format``, ``area`` and
  ``contact_window`` (agreed visit hours); orders are ``transactions`` with
  ``cartons``; field visits and status events (phone changed, business closed)
  are ``contacts`` (status events: kind ``"status"``, the event in ``outcome``).
- ``elderly_care``: residents are ``customers`` with ``lives_alone``, ``dependent``
  and ``low_income`` (and ``birth_year``); services delivered are ``transactions``;
  service cases are ``complaints`` rows (kind = the case type, ``outcome``
  ``"closed"`` or ``"open"``, ``closed_on``); visits and calls are ``contacts``.

Every row is dated on or before ``as_of`` and on or after its customer's
``first_seen``; the same arguments give the same tables.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from crmkit._params import check_choice, check_date

__all__ = ["SECTORS", "make_sector"]

SECTORS = ("insurer", "broker", "tobacco_retail", "elderly_care")
_CODE = {s: i + 11 for i, s in enumerate(SECTORS)}
_EPOCH = dt.date(1970, 1, 1)


def _ids(prefix: str, idx: np.ndarray, width: int = 6) -> pl.Series:
    return pl.select(pl.concat_str(pl.lit(prefix), pl.Series(idx).cast(pl.String)
                                   .str.zfill(width))).to_series()


def _dates(days: np.ndarray) -> pl.Series:
    return pl.Series(np.asarray(days, dtype=np.int64)).cast(pl.Int32).cast(pl.Date)


def _nullable_dates(days: np.ndarray, valid: np.ndarray) -> pl.Series:
    series = _dates(np.where(valid, days, 0))
    return pl.select(pl.when(pl.Series(valid)).then(series)).to_series()


def _windows(rng, n: int, choices, p) -> list[str | None]:
    pick = rng.choice(len(choices), n, p=p)
    return [choices[i] for i in pick]


def _base_customers(rng, n: int, end_day: int, years_known: float, prefix: str,
                    n_branches: int) -> dict:
    branch = rng.integers(0, n_branches, n)
    first_seen = end_day - np.floor(rng.power(0.8, n) * years_known * 365.25).astype(np.int64)
    return {"n": n, "ids": _ids(prefix, np.arange(1, n + 1)), "branch": branch,
            "branch_ids": _ids("B", branch + 1, 2), "first_seen": first_seen}


def _managers(rng, c: dict, per_manager: int, level: str, prefix: str,
              end_day: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    n_branches = int(c["branch"].max()) + 1
    rows, owner = [], np.empty(c["n"], dtype=object)
    for b in range(n_branches):
        members = np.flatnonzero(c["branch"] == b)
        k = max(1, int(np.ceil(len(members) / per_manager)))
        ids = [f"{prefix}{b + 1:02d}{j + 1:02d}" for j in range(k)]
        rows += [(m, f"B{b + 1:02d}", level, per_manager * 2, True) for m in ids]
        owner[members] = np.array(ids, dtype=object)[rng.integers(0, k, len(members))]
    managers = pl.DataFrame(rows, schema={"manager_id": pl.String, "branch_id": pl.String,
                                          "level": pl.String, "capacity": pl.Int64,
                                          "active": pl.Boolean}, orient="row")
    since = np.minimum(c["first_seen"] + rng.integers(0, 30, c["n"]), end_day)
    assignments = pl.DataFrame({"customer_id": c["ids"], "manager_id": owner.astype(str),
                                "role": "primary", "since": _dates(since)})
    return managers, assignments


def make_sector(sector: str, n_customers: int = 500, *, seed: int = 0,
                as_of: dt.date | str = "2025-12-31", years: int = 3) -> dict[str, pl.DataFrame]:
    """Sample tables of one sector, as they stand on ``as_of``.

    Parameters
    ----------
    sector : {"insurer", "broker", "tobacco_retail", "elderly_care"}
    n_customers : int
        Policyholders, investors, shops or residents.
    seed : int
    as_of : date or str
        The last day of the data.
    years : int
        Years of history before ``as_of``.

    Returns
    -------
    dict of str to polars.DataFrame
        Canonical tables (see the module docs for the sector's extra columns).

    Examples
    --------
    >>> t = make_sector("insurer", 50, seed=1)
    >>> sorted(t)
    ['assignments', 'complaints', 'contacts', 'customers', 'holdings', 'managers', 'products', 'transactions']
    >>> {"renewal_date", "premium"} <= set(t["holdings"].columns)
    True
    >>> make_sector("insurer", 50, seed=1)["holdings"].equals(t["holdings"])
    True
    """
    owner = "make_sector"
    check_choice(sector, SECTORS, "sector", owner)
    if not isinstance(n_customers, int) or isinstance(n_customers, bool) or n_customers < 1:
        raise ValueError(f"The 'n_customers' parameter of {owner} must be a positive integer. "
                         f"Got {n_customers!r} instead.")
    if not isinstance(years, int) or isinstance(years, bool) or years < 1:
        raise ValueError(f"The 'years' parameter of {owner} must be a positive integer. "
                         f"Got {years!r} instead.")
    end = check_date(as_of, "as_of", owner)
    rng = np.random.default_rng([seed, _CODE[sector]])
    end_day = (end - _EPOCH).days
    make = {"insurer": _insurer, "broker": _broker, "tobacco_retail": _tobacco,
            "elderly_care": _care}[sector]
    return make(rng, n_customers, end, end_day, years)


# --------------------------------------------------------------------------- insurer

INSURER_PRODUCTS = (
    # product, category, risk rating, margin, mean annual premium, claims a year, mean claim
    ("AUTO", "insurance", 1, 0.12, 4200.0, 0.18, 9000.0),
    ("HOME", "insurance", 1, 0.18, 1500.0, 0.05, 15000.0),
    ("HEALTH", "insurance", 1, 0.10, 3600.0, 0.35, 4000.0),
    ("LIFE", "insurance", 2, 0.25, 9000.0, 0.01, 150000.0),
    ("TRAVEL", "insurance", 1, 0.20, 400.0, 0.04, 2500.0),
    ("COMMERCIAL", "insurance", 2, 0.15, 60000.0, 0.30, 40000.0),
)


def _insurer(rng, n: int, end: dt.date, end_day: int, years: int) -> dict[str, pl.DataFrame]:
    start_day = end_day - int(years * 365.25)
    c = _base_customers(rng, n, end_day, years + 4, "H", max(2, n // 400))
    corporate = rng.random(n) < 0.08
    age = np.clip(rng.normal(46, 14, n), 20, 90).astype(np.int64)
    pids = np.array([p[0] for p in INSURER_PRODUCTS])
    personal_p = np.array([0.42, 0.22, 0.18, 0.08, 0.10, 0.0])
    corporate_p = np.array([0.25, 0.10, 0.10, 0.0, 0.0, 0.55])
    n_pol = 1 + rng.poisson(np.where(corporate, 1.4, 0.7))
    owner = np.repeat(np.arange(n), n_pol)
    m = owner.size
    prod = np.where(corporate[owner], rng.choice(6, m, p=corporate_p),
                    rng.choice(6, m, p=personal_p))
    mean_premium = np.array([p[4] for p in INSURER_PRODUCTS])[prod]
    premium = np.round(mean_premium * rng.lognormal(0, 0.45, m), 2)
    opened = c["first_seen"][owner] + rng.integers(0, 365 * 3, m)
    opened = np.maximum(np.minimum(opened, end_day - rng.integers(0, 30, m)),
                        c["first_seen"][owner])
    # each anniversary: not renewed with a probability that falls with tenure; a lapse
    # (premiums stopped mid-term) as a hazard; both higher after a complaint
    complainer = rng.random(n) < 0.06
    closed = np.full(m, -1, dtype=np.int64)
    reason = np.empty(m, dtype=object)
    reason[:] = None
    lapse_at = opened + np.ceil(rng.exponential(365.25 / (0.03 + 0.05 * complainer[owner]))) \
        .astype(np.int64)
    for k in range(1, 12):
        anniv = opened + np.round(k * 365.25).astype(np.int64)
        live = (closed < 0) & (anniv <= end_day)
        lapsed = live & (lapse_at < anniv)
        closed[lapsed], reason[lapsed] = lapse_at[lapsed], "lapsed"
        p_leave = 0.16 / np.sqrt(k) + 0.15 * complainer[owner]
        gone = live & ~lapsed & (rng.random(m) < p_leave)
        closed[gone] = anniv[gone]
        reason[gone] = np.where(rng.random(gone.sum()) < 0.85, "not_renewed", "vehicle_sold")
    last_lapse = (closed < 0) & (lapse_at <= end_day)
    closed[last_lapse], reason[last_lapse] = lapse_at[last_lapse], "lapsed"
    is_closed = closed >= 0
    # the end of the current term for open policies: the next anniversary after as_of
    terms = np.ceil((end_day + 1 - opened) / 365.25).astype(np.int64)
    renewal = opened + np.round(np.maximum(terms, 1) * 365.25).astype(np.int64)
    holdings = pl.DataFrame({
        "account_id": _ids("P", np.arange(1, m + 1), 7),
        "customer_id": c["ids"].gather(owner),
        "product_id": pids[prod],
        "opened": _dates(opened),
        "closed": _nullable_dates(closed, is_closed),
        "close_reason": pl.Series(reason.tolist(), dtype=pl.String),
        "renewal_date": _nullable_dates(renewal, ~is_closed),
        "premium": premium,
    })
    # premiums: one payment at the start of every term up to the end or the closure
    pay_pol, pay_day = [], []
    for k in range(0, 12):
        d = opened + np.round(k * 365.25).astype(np.int64)
        ok = (d <= end_day) & (d >= start_day) & (~is_closed | (d < closed))
        pay_pol.append(np.flatnonzero(ok))
        pay_day.append(d[ok])
    pay_pol, pay_day = np.concatenate(pay_pol), np.concatenate(pay_day)
    # claims: Poisson over each policy's active days in the window
    active_to = np.where(is_closed, closed, end_day)
    active_from = np.maximum(opened, start_day)
    span = np.clip(active_to - active_from, 0, None)
    rate = np.array([p[5] for p in INSURER_PRODUCTS])[prod]
    n_claims = rng.poisson(rate * span / 365.25)
    cl_pol = np.repeat(np.arange(m), n_claims)
    cl_day = active_from[cl_pol] + np.floor(rng.random(cl_pol.size) * np.maximum(span[cl_pol], 1)) \
        .astype(np.int64)
    # first notices of loss on the last day (a claims desk sees some every day), so that
    # the sample has claims awaiting follow-up and same-day alerts
    live_pol = np.flatnonzero(~is_closed)
    today = rng.choice(live_pol, min(live_pol.size, 1 + n // 100), replace=False)
    cl_pol = np.concatenate([cl_pol, today])
    cl_day = np.concatenate([cl_day, np.full(today.size, end_day)])
    cl_amt = np.round(np.array([p[6] for p in INSURER_PRODUCTS])[prod[cl_pol]]
                      * rng.lognormal(-0.3, 0.9, cl_pol.size), 2)
    cl_amt[-1] = max(cl_amt[-1], 80000.0 + cl_amt[-1])  # one of them large
    seconds = rng.integers(8 * 3600, 18 * 3600, pay_pol.size + cl_pol.size)
    pol = np.concatenate([pay_pol, cl_pol])
    day = np.concatenate([pay_day, cl_day])
    tx = pl.DataFrame({
        "customer_id": c["ids"].gather(owner[pol]),
        "timestamp": (_dates(day).cast(pl.Datetime("us"))
                      + pl.Series(seconds * 1_000_000).cast(pl.Duration("us"))),
        "amount": np.concatenate([premium[pay_pol], -cl_amt]),
        "channel": np.array(["premium"] * pay_pol.size + ["claim"] * cl_pol.size),
        "product_id": pids[prod[pol]],
    }).sort("timestamp", "customer_id")
    tx = tx.with_columns(_ids("T", np.arange(1, tx.height + 1), 8).alias("transaction_id"))
    tx = tx.select("transaction_id", "customer_id", "timestamp", "amount", "channel", "product_id")
    total_premium = np.bincount(owner, weights=np.where(is_closed, 0.0, premium), minlength=n)
    key = corporate | (total_premium >= np.quantile(total_premium, 0.97))
    customers = pl.DataFrame({
        "customer_id": c["ids"], "branch_id": c["branch_ids"], "first_seen": _dates(c["first_seen"]),
        "birth_year": pl.select(pl.when(pl.Series(~corporate)).then(
            pl.Series(end.year - age))).to_series(),
        "opt_out_sms": rng.random(n) < 0.08, "opt_out_email": rng.random(n) < 0.10,
        "opt_out_phone": rng.random(n) < 0.04, "do_not_contact": rng.random(n) < 0.01,
        "contact_window": _windows(rng, n, [None, "09:00-18:00", "18:00-21:00"], [0.6, 0.3, 0.1]),
        "segment": np.where(corporate, "corporate", "personal"),
        "key_account": key,
    })
    managers, assignments = _managers(rng, c, 150, "branch", "AM", end_day)
    # contacts: routine calls; a follow-up call after most claims; executive visits to key
    # accounts (2-5 a year, some behind)
    routine = rng.poisson(1.2 * years, n)
    r_own = np.repeat(np.arange(n), routine)
    r_day = np.maximum(c["first_seen"][r_own], start_day) + np.floor(
        rng.random(r_own.size) * np.maximum(end_day - np.maximum(c["first_seen"][r_own], start_day), 1)
    ).astype(np.int64)
    followed = rng.random(cl_pol.size) < 0.7
    f_day = cl_day[followed] + rng.integers(0, 4, followed.sum())
    f_ok = f_day <= end_day
    f_own = owner[cl_pol[followed]][f_ok]
    ex_rate = np.where(key, rng.uniform(1.5, 5.0, n), 0.0)
    ex_n = rng.poisson(ex_rate * years)
    e_own = np.repeat(np.arange(n), ex_n)
    e_day = np.maximum(c["first_seen"][e_own], start_day) + np.floor(
        rng.random(e_own.size) * np.maximum(end_day - np.maximum(c["first_seen"][e_own], start_day), 1)
    ).astype(np.int64)
    kinds = np.concatenate([rng.choice(np.array(["call", "email", "sms"]), r_own.size),
                            np.array(["call"] * f_own.size, dtype=object).astype(str),
                            np.array(["executive_visit"] * e_own.size, dtype=object).astype(str)])
    contacts = pl.DataFrame({
        "customer_id": c["ids"].gather(np.concatenate([r_own, f_own, e_own])),
        "date": _dates(np.concatenate([r_day, f_day[f_ok], e_day])),
        "kind": kinds,
        "outcome": rng.choice(np.array(["reached", "no_answer"]), kinds.size, p=[0.8, 0.2]),
    }).sort("date", "customer_id", "kind")
    # complaints: more from complainers; graded by impact and difficulty
    n_comp = rng.poisson(np.where(complainer, 1.5, 0.08) * years)
    q_own = np.repeat(np.arange(n), n_comp)
    q_from = np.maximum(c["first_seen"][q_own], start_day)
    q_day = q_from + np.floor(rng.random(q_own.size) * np.maximum(end_day - q_from, 1)).astype(np.int64)
    still_open = (end_day - q_day) < rng.integers(5, 60, q_own.size)
    complaints = pl.DataFrame({
        "customer_id": c["ids"].gather(q_own),
        "date": _dates(q_day),
        "kind": rng.choice(np.array(["claims_handling", "billing", "service", "sales"]), q_own.size),
        "outcome": np.where(still_open, "open", "resolved"),
        "impact": rng.choice(np.array([1, 2, 3]), q_own.size, p=[0.5, 0.35, 0.15]),
        "difficulty": rng.choice(np.array([1, 2, 3]), q_own.size, p=[0.45, 0.4, 0.15]),
    }).sort("date", "customer_id")
    products = pl.DataFrame([p[:4] for p in INSURER_PRODUCTS], orient="row", schema={
        "product_id": pl.String, "category": pl.String, "risk_rating": pl.Int64,
        "margin": pl.Float64})
    return {"customers": customers, "products": products, "managers": managers,
            "holdings": holdings.sort("account_id"), "transactions": tx,
            "assignments": assignments, "contacts": contacts, "complaints": complaints}


# ------------------------------------------------------------------------------ broker

BROKER_PRODUCTS = (  # product, category, risk rating, margin
    ("BROKERAGE", "brokerage", 4, 0.0), ("FUND_EQ", "fund", 4, 0.012),
    ("FUND_BD", "fund", 2, 0.006), ("MMF", "wealth", 1, 0.003), ("BOND", "bond", 2, 0.002),
    ("POINTS", "loyalty", 1, 0.0))
TRADING_STYLES = {"active_trader": (0.12, 9.0), "regular": (0.33, 2.5),
                  "buy_and_hold": (0.40, 0.35), "inactive": (0.15, 0.0)}
N_PROFILE_FIELDS = 40


def _month_ends(end: dt.date, months: int) -> np.ndarray:
    out, y, m = [], end.year, end.month
    if (dt.date(y + (m == 12), m % 12 + 1, 1) - dt.timedelta(days=1)) > end:
        y, m = (y - 1, 12) if m == 1 else (y, m - 1)
    for _ in range(months):
        out.append((dt.date(y + (m == 12), m % 12 + 1, 1) - dt.timedelta(days=1) - _EPOCH).days)
        y, m = (y - 1, 12) if m == 1 else (y, m - 1)
    return np.array(sorted(out), dtype=np.int64)


def _broker(rng, n: int, end: dt.date, end_day: int, years: int) -> dict[str, pl.DataFrame]:
    start_day = end_day - int(years * 365.25)
    c = _base_customers(rng, n, end_day, years + 7, "I", max(2, n // 300))
    age = np.clip(rng.normal(45, 13, n), 20, 88).astype(np.int64)
    risk = np.clip(np.round(rng.normal(3.4 - (age - 45) / 25, 1.0, n)), 1, 5).astype(np.int64)
    styles = np.array(list(TRADING_STYLES))
    style = rng.choice(len(styles), n, p=[v[0] for v in TRADING_STYLES.values()])
    turnover = np.array([v[1] for v in TRADING_STYLES.values()])[style] * rng.lognormal(0, 0.4, n)
    assets = 10.0 ** rng.normal(5.0, 0.75, n)  # CNY, median 100k
    # accounts: brokerage for everyone; funds, money market and bonds for some; points
    kinds = [0]
    rows_c, rows_p = [np.arange(n)], [np.zeros(n, dtype=np.int64)]
    share = {0: None}
    for p, prob in ((1, 0.35 + 0.1 * (risk >= 4)), (2, 0.25 + 0.1 * (risk <= 2)),
                    (3, 0.45), (4, 0.10 + 0.1 * (age > 55))):
        has = rng.random(n) < prob
        rows_c.append(np.flatnonzero(has))
        rows_p.append(np.full(int(has.sum()), p))
        kinds.append(p)
    rows_c.append(np.arange(n))
    rows_p.append(np.full(n, 5))
    own = np.concatenate(rows_c)
    prod = np.concatenate(rows_p)
    m = own.size
    opened = np.maximum(c["first_seen"][own] + np.where(prod == 0, 0, rng.integers(0, 900, m)),
                        c["first_seen"][own])
    opened = np.minimum(opened, end_day)
    weight = np.select([prod == 0, prod == 1, prod == 2, prod == 3, prod == 4],
                       [0.55, 0.25, 0.2, 0.25, 0.3], 0.0) * rng.uniform(0.5, 1.5, m)
    base = assets[own] * weight
    holdings = pl.DataFrame({
        "account_id": _ids("A", np.arange(1, m + 1), 7), "customer_id": c["ids"].gather(own),
        "product_id": np.array([p[0] for p in BROKER_PRODUCTS])[prod], "opened": _dates(opened),
        "closed": pl.Series([None] * m, dtype=pl.Date),
        "close_reason": pl.Series([None] * m, dtype=pl.String)})
    # trades: Poisson by turnover; value per trade ~ 5-15% of assets; commission 0.025%,
    # at least 5 CNY
    trade_rate = turnover * 365.25 / 365.25 * 10  # ~10 trades per unit of yearly turnover
    t_n = rng.poisson(trade_rate * np.maximum(end_day - np.maximum(c["first_seen"], start_day), 0)
                      / 365.25)
    t_own = np.repeat(np.arange(n), t_n)
    t_lo = np.maximum(c["first_seen"][t_own], start_day)
    t_day = t_lo + np.floor(rng.random(t_own.size) * np.maximum(end_day - t_lo, 1)).astype(np.int64)
    notional = np.round(assets[t_own] * 0.1 * rng.lognormal(0, 0.5, t_own.size), 2)
    rate = np.where(np.isin(c["branch"][t_own], [0]), 0.00025, 0.0003)
    commission = np.round(np.maximum(notional * rate, 5.0), 2)
    seconds = rng.integers(int(9.5 * 3600), 15 * 3600, t_own.size)
    tx = pl.DataFrame({
        "customer_id": c["ids"].gather(t_own),
        "timestamp": (_dates(t_day).cast(pl.Datetime("us"))
                      + pl.Series(seconds * 1_000_000).cast(pl.Duration("us"))),
        "amount": notional,
        "channel": rng.choice(np.array(["mobile", "online", "branch"]), t_own.size,
                              p=[0.7, 0.25, 0.05]),
        "product_id": "BROKERAGE", "commission": commission,
    }).sort("timestamp", "customer_id")
    tx = tx.with_columns(_ids("T", np.arange(1, tx.height + 1), 8).alias("transaction_id")) \
        .select("transaction_id", "customer_id", "timestamp", "amount", "channel", "product_id",
                "commission")
    # month-end balances: assets drift; loyalty points accrue with commission and tenure
    snaps = _month_ends(end, 25)
    parts = []
    yearly_comm = np.bincount(t_own, weights=commission, minlength=n) / max(years, 1)
    for day_value in snaps:
        live = opened <= day_value
        a_idx = np.flatnonzero(live)
        drift = np.exp(0.06 * (day_value - end_day) / 365.25) * rng.lognormal(0, 0.08, a_idx.size)
        tenure = (day_value - c["first_seen"][own[a_idx]]) / 365.25
        points = np.floor(yearly_comm[own[a_idx]] * np.clip(tenure, 0, None) * 2
                          + 500 * np.clip(tenure, 0, 10))
        bal = np.where(prod[a_idx] == 5, points, np.round(base[a_idx] * drift, 2))
        parts.append(pl.DataFrame({"account_id": holdings["account_id"].gather(a_idx),
                                   "date": _dates(np.full(a_idx.size, day_value)),
                                   "balance": bal.astype(float)}))
    balances = pl.concat(parts)
    # profile fields: advisers differ in how completely they keep them
    managers, assignments = _managers(rng, c, 100, "wealth", "AD", end_day)
    adv_codes = assignments["manager_id"].to_numpy()
    advisers = np.unique(adv_codes)
    diligence = dict(zip(advisers.tolist(), rng.uniform(0.6, 0.98, advisers.size).tolist()))
    keep_p = np.array([diligence[a] for a in adv_codes])
    profile = {}
    values = np.array(["a", "b", "c", "d"])
    for j in range(1, N_PROFILE_FIELDS + 1):
        present = rng.random(n) < keep_p
        v = values[rng.integers(0, 4, n)]
        profile[f"profile_{j:02d}"] = pl.select(pl.when(pl.Series(present))
                                                .then(pl.Series(v))).to_series()
    club = rng.choice(np.array(["", "star_club", "elite_club"]), n, p=[0.86, 0.10, 0.04])
    customers = pl.DataFrame({
        "customer_id": c["ids"], "branch_id": c["branch_ids"], "first_seen": _dates(c["first_seen"]),
        "birth_year": end.year - age,
        "risk_level": pl.select(pl.when(pl.Series(rng.random(n) > 0.05))
                                .then(pl.Series(risk))).to_series(),
        "opt_out_sms": rng.random(n) < 0.1, "opt_out_email": rng.random(n) < 0.1,
        "opt_out_phone": rng.random(n) < 0.05, "do_not_contact": rng.random(n) < 0.01,
        "contact_window": _windows(rng, n, [None, "09:00-11:30", "13:00-15:00", "18:00-20:00"],
                                   [0.5, 0.2, 0.2, 0.1]),
        "club": pl.select(pl.when(pl.Series(club != "")).then(pl.Series(club))).to_series(),
        **profile,
    })
    c_n = rng.poisson(2.0 * years, n)
    c_own = np.repeat(np.arange(n), c_n)
    c_lo = np.maximum(c["first_seen"][c_own], start_day)
    c_day = c_lo + np.floor(rng.random(c_own.size) * np.maximum(end_day - c_lo, 1)).astype(np.int64)
    contacts = pl.DataFrame({
        "customer_id": c["ids"].gather(c_own), "date": _dates(c_day),
        "kind": rng.choice(np.array(["call", "email", "meeting"]), c_own.size, p=[0.6, 0.3, 0.1]),
        "outcome": rng.choice(np.array(["reached", "no_answer", "declined", "sale"]), c_own.size,
                              p=[0.55, 0.25, 0.1, 0.1]),
    }).sort("date", "customer_id", "kind")
    products = pl.DataFrame([p for p in BROKER_PRODUCTS], orient="row", schema={
        "product_id": pl.String, "category": pl.String, "risk_rating": pl.Int64,
        "margin": pl.Float64})
    return {"customers": customers, "products": products, "managers": managers,
            "holdings": holdings, "balances": balances, "transactions": tx,
            "assignments": assignments, "contacts": contacts}


# ---------------------------------------------------------------------- tobacco retail

RETAIL_FORMATS = {  # format: (share, yearly cartons of a typical shop)
    "convenience": (0.34, 900.0), "grocery": (0.26, 500.0), "supermarket": (0.10, 2400.0),
    "newsstand": (0.12, 350.0), "tobacco_specialty": (0.08, 1800.0),
    "restaurant_bar": (0.10, 200.0)}
AREAS = {"urban_core": (0.25, 1.4), "urban": (0.35, 1.1), "suburban": (0.25, 0.9),
         "rural": (0.15, 0.7)}
_BRANDS = (("BR01", 24.0), ("BR02", 31.0), ("BR03", 45.0), ("BR04", 62.0), ("BR05", 95.0))


def _tobacco(rng, n: int, end: dt.date, end_day: int, years: int) -> dict[str, pl.DataFrame]:
    start_day = end_day - int(years * 365.25)
    c = _base_customers(rng, n, end_day, years + 6, "S", max(2, n // 300))
    # some shops opened in the last weeks: the new shops visited at once
    fresh = rng.random(n) < 0.04
    c["first_seen"] = np.where(fresh, end_day - rng.integers(0, 45, n), c["first_seen"])
    formats = np.array(list(RETAIL_FORMATS))
    areas = np.array(list(AREAS))
    fmt = rng.choice(len(formats), n, p=[v[0] for v in RETAIL_FORMATS.values()])
    area = rng.choice(len(areas), n, p=[v[0] for v in AREAS.values()])
    yearly = np.array([v[1] for v in RETAIL_FORMATS.values()])[fmt] \
        * np.array([v[1] for v in AREAS.values()])[area] * rng.lognormal(0, 0.5, n)
    # closures (a status event, orders stop) and quiet shops (orders stop, no event)
    closes = rng.random(n) < 0.05
    close_day = np.where(closes, end_day - rng.integers(0, 400, n), end_day + 10**6)
    close_day = np.maximum(close_day, c["first_seen"] + 30)
    quiet_from = np.where(rng.random(n) < 0.04, end_day - rng.integers(60, 200, n), end_day + 10**6)
    # weekly orders (missed weeks happen), cartons Poisson around the shop's weekly mean
    first_week = np.maximum(c["first_seen"], start_day)
    n_weeks = np.clip((np.minimum(close_day, end_day) - first_week) // 7, 0, None) + 1
    own = np.repeat(np.arange(n), n_weeks)
    k = np.arange(own.size) - np.repeat(np.cumsum(n_weeks) - n_weeks, n_weeks)
    day = first_week[own] + 7 * k + rng.integers(0, 3, own.size)
    keep = (rng.random(own.size) < 0.85) & (day <= end_day) & (day < close_day[own]) \
        & (day < quiet_from[own]) & (day >= c["first_seen"][own])
    own, day = own[keep], day[keep]
    cartons = np.maximum(rng.poisson(yearly[own] / 52 / 0.85), 1)
    brand = rng.choice(len(_BRANDS), own.size, p=[0.3, 0.3, 0.2, 0.12, 0.08])
    price = np.array([b[1] for b in _BRANDS])[brand] * 10
    seconds = rng.integers(7 * 3600, 12 * 3600, own.size)
    tx = pl.DataFrame({
        "customer_id": c["ids"].gather(own),
        "timestamp": (_dates(day).cast(pl.Datetime("us"))
                      + pl.Series(seconds * 1_000_000).cast(pl.Duration("us"))),
        "amount": np.round(cartons * price, 2),
        "channel": "order",
        "product_id": np.array([b[0] for b in _BRANDS])[brand],
        "cartons": cartons.astype(np.int64),
    }).sort("timestamp", "customer_id")
    tx = tx.with_columns(_ids("O", np.arange(1, tx.height + 1), 8).alias("transaction_id")) \
        .select("transaction_id", "customer_id", "timestamp", "amount", "channel",
                "product_id", "cartons")
    windows = ["08:00-10:00", "09:00-11:00", "10:00-12:00", "14:00-17:00", "15:00-18:00", None]
    customers = pl.DataFrame({
        "customer_id": c["ids"], "branch_id": c["branch_ids"], "first_seen": _dates(c["first_seen"]),
        "opt_out_sms": rng.random(n) < 0.05, "opt_out_email": rng.random(n) < 0.05,
        "opt_out_phone": rng.random(n) < 0.02,
        "contact_window": _windows(rng, n, windows, [0.15, 0.25, 0.2, 0.2, 0.1, 0.1]),
        "retail_format": formats[fmt], "area": areas[area],
    })
    managers, assignments = _managers(rng, c, 120, "branch", "CM", end_day)
    # field visits: bigger shops more often; new shops mostly not yet visited
    # regular rounds by volume (weekly for the largest shops, every two months for the
    # smallest), each rep a little early or late; new shops mostly not visited yet
    every = np.select([yearly >= 3000, yearly >= 1500, yearly >= 800, yearly >= 300],
                      [7, 14, 30, 45], 60) * rng.uniform(0.7, 1.25, n)
    first_visit = c["first_seen"] + rng.integers(5, 40, n)
    last_day = np.minimum(close_day, end_day)
    v_n = np.clip(np.floor((last_day - np.maximum(first_visit, start_day)) / every), 0, None) \
        .astype(np.int64) + (first_visit <= last_day)
    v_own = np.repeat(np.arange(n), v_n)
    k_v = np.arange(v_own.size) - np.repeat(np.cumsum(v_n) - v_n, v_n)
    phase = np.floor(rng.uniform(0.0, 1.15, n) * every).astype(np.int64)
    v_day = last_day[v_own] - phase[v_own] - np.floor(k_v * every[v_own]).astype(np.int64) \
        - rng.integers(0, 3, v_own.size)
    keep_v = (v_day >= c["first_seen"][v_own]) & (v_day >= start_day)
    v_own, v_day = v_own[keep_v], v_day[keep_v]
    # status events: the closures, and phone/owner changes
    changes = rng.random(n) < 0.06
    ch_day = np.maximum(end_day - rng.integers(0, 300, n), c["first_seen"])
    s_own = np.concatenate([np.flatnonzero(closes & (close_day <= end_day)),
                            np.flatnonzero(changes)])
    s_day = np.concatenate([close_day[closes & (close_day <= end_day)], ch_day[changes]])
    s_evt = np.concatenate([np.array(["business_closed"] * int((closes & (close_day <= end_day)).sum()),
                                     dtype=object),
                            rng.choice(np.array(["phone_changed", "owner_changed", "relocated"],
                                                dtype=object), int(changes.sum()),
                                       p=[0.6, 0.25, 0.15])]).astype(str)
    contacts = pl.DataFrame({
        "customer_id": c["ids"].gather(np.concatenate([v_own, s_own])),
        "date": _dates(np.concatenate([v_day, s_day])),
        "kind": np.array(["visit"] * v_own.size + ["status"] * s_own.size),
        "outcome": np.concatenate([rng.choice(np.array(["order_taken", "no_order", "display_checked"]),
                                              v_own.size), s_evt]),
    }).sort("date", "customer_id", "kind")
    products = pl.DataFrame({"product_id": [b[0] for b in _BRANDS], "category": "cigarettes",
                             "risk_rating": 1, "margin": 0.08})
    return {"customers": customers, "products": products, "managers": managers,
            "transactions": tx, "assignments": assignments, "contacts": contacts}


# ------------------------------------------------------------------------ elderly care

CASE_KINDS = {  # case type: (share, mean days to close)
    "meal_service": (0.30, 4.0), "medical_escort": (0.20, 2.0), "home_repair": (0.15, 12.0),
    "cleaning": (0.15, 6.0), "benefits_application": (0.12, 30.0), "emergency_alarm": (0.08, 1.0)}


def _care(rng, n: int, end: dt.date, end_day: int, years: int) -> dict[str, pl.DataFrame]:
    start_day = end_day - int(years * 365.25)
    c = _base_customers(rng, n, end_day, years + 5, "R", max(2, n // 250))
    fresh = rng.random(n) < 0.03  # registered in the last weeks
    c["first_seen"] = np.where(fresh, end_day - rng.integers(0, 40, n), c["first_seen"])
    age = np.clip(np.round(60 + rng.gamma(2.2, 7.5, n)), 60, 104).astype(np.int64)
    old = age >= 80
    lives_alone = rng.random(n) < np.where(old, 0.45, 0.25)
    dependent = rng.random(n) < np.clip(0.05 + 0.012 * (age - 60), 0, 0.7)
    low_income = rng.random(n) < 0.28
    # about 4% never assessed for one flag (null)
    def with_gaps(flag):
        gap = rng.random(n) < 0.04
        return pl.select(pl.when(pl.Series(~gap)).then(pl.Series(flag))).to_series()
    need = 1 + old + lives_alone + 2 * dependent + low_income
    customers = pl.DataFrame({
        "customer_id": c["ids"], "branch_id": c["branch_ids"], "first_seen": _dates(c["first_seen"]),
        "birth_year": end.year - age,
        "opt_out_sms": rng.random(n) < 0.3, "opt_out_email": rng.random(n) < 0.6,
        "opt_out_phone": rng.random(n) < 0.02, "do_not_contact": rng.random(n) < 0.01,
        "contact_window": _windows(rng, n, [None, "09:00-12:00", "14:00-17:00", "10:00-16:00"],
                                   [0.4, 0.3, 0.2, 0.1]),
        "lives_alone": with_gaps(lives_alone), "dependent": with_gaps(dependent),
        "low_income": with_gaps(low_income),
    })
    managers, assignments = _managers(rng, c, 60, "branch", "CW", end_day)
    # visits: more for residents in need, some workers behind; calls in between
    every = np.select([need >= 4, need >= 3, need >= 2], [7, 14, 30], 90) * rng.uniform(0.8, 1.6, n)
    first_visit = c["first_seen"] + rng.integers(3, 30, n)
    lo_day = np.maximum(first_visit, start_day)
    v_n = np.clip(np.floor((end_day - lo_day) / every), 0, None).astype(np.int64) \
        + (first_visit <= end_day)
    v_own = np.repeat(np.arange(n), v_n)
    k_v = np.arange(v_own.size) - np.repeat(np.cumsum(v_n) - v_n, v_n)
    phase = np.floor(rng.uniform(0.0, 1.1, n) * every).astype(np.int64)
    v_day = end_day - phase[v_own] - np.floor(k_v * every[v_own]).astype(np.int64)
    keep = (v_day >= c["first_seen"][v_own]) & (v_day >= start_day)
    v_own, v_day = v_own[keep], v_day[keep]
    p_n = rng.poisson(np.maximum(end_day - np.maximum(c["first_seen"], start_day), 0) / 45)
    p_own = np.repeat(np.arange(n), p_n)
    p_lo = np.maximum(c["first_seen"][p_own], start_day)
    p_day = p_lo + np.floor(rng.random(p_own.size) * np.maximum(end_day - p_lo, 1)).astype(np.int64)
    contacts = pl.DataFrame({
        "customer_id": c["ids"].gather(np.concatenate([v_own, p_own])),
        "date": _dates(np.concatenate([v_day, p_day])),
        "kind": np.array(["visit"] * v_own.size + ["phone"] * p_own.size),
        "outcome": rng.choice(np.array(["reached", "reached", "reached", "no_answer"]),
                              v_own.size + p_own.size),
    }).sort("date", "customer_id", "kind")
    # service cases (the complaints table): opened with need, closed after a while
    kinds = np.array(list(CASE_KINDS))
    q_n = rng.poisson(0.8 * need * years)
    q_own = np.repeat(np.arange(n), q_n)
    q_lo = np.maximum(c["first_seen"][q_own], start_day)
    q_day = q_lo + np.floor(rng.random(q_own.size) * np.maximum(end_day - q_lo, 1)).astype(np.int64)
    kind = rng.choice(len(kinds), q_own.size, p=[v[0] for v in CASE_KINDS.values()])
    took = np.ceil(rng.exponential(np.array([v[1] for v in CASE_KINDS.values()])[kind])) \
        .astype(np.int64)
    closed = q_day + took <= end_day
    cases = pl.DataFrame({
        "customer_id": c["ids"].gather(q_own), "date": _dates(q_day), "kind": kinds[kind],
        "outcome": np.where(closed, "closed", "open"),
        "closed_on": _nullable_dates(q_day + took, closed),
    }).sort("date", "customer_id", "kind")
    # services delivered (meals, cleaning hours) are the transactions
    s_n = rng.poisson(np.maximum(end_day - np.maximum(c["first_seen"], start_day), 0) / 365
                      * 6 * need)
    s_own = np.repeat(np.arange(n), s_n)
    s_lo = np.maximum(c["first_seen"][s_own], start_day)
    s_day = s_lo + np.floor(rng.random(s_own.size) * np.maximum(end_day - s_lo, 1)).astype(np.int64)
    service = rng.choice(np.array(["MEALS", "CLEAN", "ESCORT", "CARE"]), s_own.size)
    cost = {"MEALS": 15.0, "CLEAN": 60.0, "ESCORT": 80.0, "CARE": 120.0}
    tx = pl.DataFrame({
        "customer_id": c["ids"].gather(s_own),
        "timestamp": _dates(s_day).cast(pl.Datetime("us")) + dt.timedelta(hours=10),
        "amount": [cost[s] for s in service.tolist()], "channel": "home", "product_id": service,
    }).sort("timestamp", "customer_id")
    tx = tx.with_columns(_ids("V", np.arange(1, tx.height + 1), 8).alias("transaction_id")) \
        .select("transaction_id", "customer_id", "timestamp", "amount", "channel", "product_id")
    products = pl.DataFrame({"product_id": ["MEALS", "CLEAN", "ESCORT", "CARE"],
                             "category": "care_service", "risk_rating": 1, "margin": 0.0})
    return {"customers": customers, "products": products, "managers": managers,
            "transactions": tx, "assignments": assignments, "contacts": contacts,
            "complaints": cases}
