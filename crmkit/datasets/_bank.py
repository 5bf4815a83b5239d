"""A realistic synthetic retail bank: every canonical table, deterministic for a seed.

The generator works on a customer x month grid with numpy, so a million customers
take minutes and a few GB. Behaviour is driven by latent per-customer states that
the models downstream are meant to recover:

- prospects: known to the bank, no product and no transaction;
- a ramp-up of activity over the first year after onboarding (growth);
- leavers: activity, spend and balances drift down over 3-9 months before the
  leave date; a contractual leaver then closes every product with a reason code,
  a silent leaver stops transacting but keeps the products open (dormant), and
  some silent leavers come back later (reactivated);
- the leave hazard rises with complaints, low engagement, low assets and youth, so
  a churn model has real signal to find.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from crmkit._params import check_date, check_positive

__all__ = ["BANK_PRODUCTS", "make_bank"]

# product_id, name, category, risk_rating, margin (annual, per unit of balance),
# share of the customer's wealth it typically holds
BANK_PRODUCTS = (
    ("P01", "Current account", "deposit", 1, 0.010, 0.25),
    ("P02", "Time deposit", "deposit", 1, 0.012, 0.30),
    ("P03", "Credit card", "card", 2, 0.030, 0.01),
    ("P04", "Money-market fund", "fund", 1, 0.004, 0.15),
    ("P05", "Bond fund", "fund", 2, 0.006, 0.15),
    ("P06", "Equity fund", "fund", 4, 0.012, 0.15),
    ("P07", "Government bond", "bond", 1, 0.003, 0.15),
    ("P08", "Wealth plan conservative", "wealth", 2, 0.006, 0.20),
    ("P09", "Wealth plan growth", "wealth", 3, 0.009, 0.20),
    ("P10", "Structured note", "wealth", 5, 0.015, 0.15),
    ("P11", "Life insurance", "insurance", 2, 0.020, 0.03),
    ("P12", "Health insurance", "insurance", 1, 0.025, 0.01),
    ("P13", "Personal loan", "loan", 3, 0.040, 0.10),
    ("P14", "Mortgage", "mortgage", 2, 0.012, 0.00),
)
"""The sample bank's product catalogue (id, name, category, risk rating, margin, wealth share)."""

_CLOSE_REASONS = np.array(["competitor_transfer", "fees", "service", "moved", "other"])
_CLOSE_P = np.array([0.38, 0.22, 0.17, 0.13, 0.10])
_CHANNELS = ["mobile", "online", "branch", "atm", "phone"]
_EPOCH = dt.date(1970, 1, 1)


def _month_start(year: int, month: int) -> int:
    return (dt.date(year, month, 1) - _EPOCH).days


def make_bank(
    n_customers: int = 10_000,
    *,
    seed: int = 0,
    as_of: dt.date | str = "2025-12-31",
    years: int = 3,
    balance_months: int = 25,
    messy: bool = False,
    return_truth: bool = False,
):
    """Generate a synthetic retail bank with every canonical table.

    Parameters
    ----------
    n_customers : int
        Number of customers (prospects included).
    seed : int
        Seed; the same seed gives the same tables, row for row.
    as_of : date or str
        The last day of the data: nothing is dated after it.
    years : int
        Years of transaction history before ``as_of``.
    balance_months : int
        Number of month-end balance snapshots per open account (the latest months).
        The default, 25, covers a one-year model training window plus the 90-day
        asset trend before it.
    messy : bool
        Add deliberately bad rows (duplicate and null keys, unknown references,
        non-finite amounts, rows dated after ``as_of``, unreadable dates, closings
        before openings) for validation tests. The clean rows are unchanged.
    return_truth : bool
        Also return the latent truth per customer (state, onboarding, leave and
        reactivation dates), for checking models; never a model input.

    Returns
    -------
    dict of str to polars.DataFrame
        customers, products, managers, holdings, balances, transactions,
        assignments, contacts, complaints; with ``return_truth``, ``(tables, truth)``.

    Examples
    --------
    >>> bank = make_bank(500, seed=1)
    >>> sorted(bank)
    ['assignments', 'balances', 'complaints', 'contacts', 'customers', 'holdings', 'managers', 'products', 'transactions']
    >>> bank["customers"].height
    500
    >>> make_bank(500, seed=1)["transactions"].equals(bank["transactions"])
    True
    """
    n = int(check_positive(n_customers, "n_customers", "make_bank"))
    years = int(check_positive(years, "years", "make_bank"))
    balance_months = int(check_positive(balance_months, "balance_months", "make_bank"))
    end = check_date(as_of, "as_of", "make_bank")
    # One independent stream per table: changing how one table is made (say more
    # balance months) leaves every other table exactly as it was.
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(6)]
    end_day = (end - _EPOCH).days

    # Month grid: months[k] = first day (epoch days) of month k; the last month holds as_of.
    n_months = years * 12
    month_first = np.empty(n_months + 1, dtype=np.int64)
    y, m = end.year, end.month
    for k in range(n_months, -1, -1):
        month_first[k] = _month_start(y, m)
        y, m = (y - 1, 12) if m == 1 else (y, m - 1)
    month_first = month_first[1:]  # n_months starts, the last holding as_of
    month_len = np.append(np.diff(month_first), end_day - month_first[-1] + 1)
    grid_start = int(month_first[0])

    cust = _customers(streams[0], n, end, end_day, grid_start)
    products = pl.DataFrame(
        [p[:5] for p in BANK_PRODUCTS],
        schema={"product_id": pl.String, "name": pl.String, "category": pl.String,
                "risk_rating": pl.Int64, "margin": pl.Float64},
        orient="row",
    )
    holdings, acct = _holdings(streams[1], cust, end_day)
    balances = _balances(streams[2], cust, acct, end, balance_months)
    transactions = _transactions(streams[3], cust, month_first, month_len, end_day)
    managers, assignments = _managers_and_assignments(streams[4], cust, end_day)
    contacts, complaints = _contacts_and_complaints(streams[5], cust, assignments, end_day,
                                                    grid_start)

    tables = {
        "customers": cust["frame"],
        "products": products,
        "managers": managers,
        "holdings": holdings,
        "balances": balances,
        "transactions": transactions,
        "assignments": assignments,
        "contacts": contacts,
        "complaints": complaints,
    }
    if messy:
        tables = _make_messy(tables, end)
    if return_truth:
        return tables, _truth(cust, end_day)
    return tables


def _dates(days: np.ndarray, valid: np.ndarray | None = None) -> pl.Series:
    """Epoch-day integers as a Date series; null where ``valid`` is False."""
    series = pl.Series(np.where(valid, days, 0) if valid is not None else days)
    series = series.cast(pl.Int32).cast(pl.Date)
    if valid is None:
        return series
    return pl.select(pl.when(pl.Series(valid)).then(series)).to_series()


def _customers(rng, n: int, end: dt.date, end_day: int, grid_start: int) -> dict:
    n_branches = int(np.clip(n // 500, 2, 40))
    branch = rng.integers(0, n_branches, n)
    # first seen: spread over 12 years, more recent customers slightly more common
    first_seen = end_day - np.floor(rng.power(0.8, n) * 12 * 365.25).astype(np.int64)
    age_now = np.clip(rng.normal(47, 17, n), 18, 95).astype(np.int64)
    birth_year = end.year - age_now
    risk = np.clip(np.round(rng.normal(3.6 - (age_now - 45) / 30, 1.0, n)), 1, 5).astype(np.int64)
    prospect = rng.random(n) < 0.08
    onboard = first_seen + rng.integers(0, 60, n)
    prospect |= onboard > end_day
    onboard = np.where(prospect, np.iinfo(np.int64).max // 4, onboard)

    log_wealth = rng.normal(4.3, 0.95, n) + 0.004 * (age_now - 45)
    wealth = 10.0 ** log_wealth
    activity = rng.gamma(1.6, 0.8, n) * (1.2 - 0.004 * (age_now - 45))
    activity = np.clip(activity, 0.05, None)
    complaint_prone = rng.random(n) < 0.10

    # Leave hazard per year: higher for the young, the poor, the less active, the complaining.
    hazard = 0.06 * np.exp(
        -0.35 * (log_wealth - 4.3) - 0.25 * np.log(activity) + 0.9 * complaint_prone
        - 0.012 * (age_now - 45)
    )
    leave = onboard + np.ceil(rng.exponential(365.25 / hazard)).astype(np.int64)
    leave = np.where(prospect, np.iinfo(np.int64).max // 4, leave)
    silent = rng.random(n) < 0.30  # leaves by going quiet, products stay open
    decline_days = rng.integers(90, 270, n)
    comeback = silent & (rng.random(n) < 0.25)
    react = np.where(comeback, leave + rng.integers(200, 420, n), np.iinfo(np.int64).max // 4)

    ids = pl.select(pl.concat_str(pl.lit("C"), pl.Series(np.arange(1, n + 1)).cast(pl.String)
                                  .str.zfill(7))).to_series().alias("customer_id")
    branch_ids = pl.select(pl.concat_str(pl.lit("B"), pl.Series(branch + 1).cast(pl.String)
                                         .str.zfill(2))).to_series().alias("branch_id")
    seg = rng.choice(np.array(["urban", "suburban", "rural"]), n, p=[0.55, 0.3, 0.15])
    frame = pl.DataFrame({
        "customer_id": ids,
        "branch_id": branch_ids,
        "first_seen": _dates(first_seen),
        "birth_year": birth_year,
        "risk_level": risk,
        "opt_out_sms": rng.random(n) < 0.08,
        "opt_out_email": rng.random(n) < 0.12,
        "opt_out_phone": rng.random(n) < 0.04 + 0.04 * (age_now < 35),
        "area": seg,
    })
    return {
        "frame": frame, "n": n, "ids": ids, "branch": branch, "n_branches": n_branches,
        "first_seen": first_seen, "onboard": onboard, "prospect": prospect, "age": age_now,
        "wealth": wealth, "activity": activity, "complaint_prone": complaint_prone,
        "leave": leave, "silent": silent, "decline_days": decline_days, "react": react,
        "risk": risk,
    }


def _activity_factor(day: np.ndarray, c: dict, idx: np.ndarray) -> np.ndarray:
    """Multiplier of a customer's normal activity on ``day`` (0 when not active)."""
    onboard, leave = c["onboard"][idx], c["leave"][idx]
    react, decline = c["react"][idx], c["decline_days"][idx]
    ramp = np.clip(0.3 + 0.7 * (day - onboard) / 365.0, 0.3, 1.0)
    into_decline = (day - (leave - decline)) / np.maximum(decline, 1)
    fade = np.where(into_decline > 0, 1.0 - 0.9 * np.clip(into_decline, 0.0, 1.0) ** 0.6, 1.0)
    active = (day >= onboard) & ((day < leave) | (day >= react))
    fade = np.where(day >= react, 1.0, fade)
    return np.where(active, ramp * fade, 0.0)


def _holdings(rng, c: dict, end_day: int):
    n = c["n"]
    cats = np.array([p[2] for p in BANK_PRODUCTS])
    pids = np.array([p[0] for p in BANK_PRODUCTS])
    shares = np.array([p[5] for p in BANK_PRODUCTS])
    onboarded = ~c["prospect"]
    log_w = np.log10(c["wealth"])
    # Probability of holding each product: the current account for everyone onboarded,
    # investment products more likely with wealth and risk appetite.
    base = np.array([1.0, 0.35, 0.45, 0.15, 0.12, 0.08, 0.06, 0.15, 0.10, 0.03, 0.18, 0.12,
                     0.12, 0.08])
    wealth_lift = np.array([0, 0.5, 0.2, 0.8, 0.8, 0.9, 0.9, 1.0, 1.0, 1.2, 0.5, 0.3, -0.2, 0.4])
    risk = c["risk"][:, None]
    ratings = np.array([p[3] for p in BANK_PRODUCTS])[None, :]
    suitable = ratings <= np.maximum(risk, 2)
    logit = np.log(base / (1.0001 - base))[None, :] + wealth_lift[None, :] * (log_w[:, None] - 4.3)
    p = 1.0 / (1.0 + np.exp(-logit))
    p[:, 0] = 1.0
    holds = (rng.random((n, len(pids))) < p) & suitable & onboarded[:, None]
    cust_idx, prod_idx = np.nonzero(holds)

    onboard, leave = c["onboard"][cust_idx], c["leave"][cust_idx]
    horizon_end = np.minimum(np.minimum(leave, end_day), onboard + 3650)
    span = np.maximum(horizon_end - onboard, 1)
    opened = onboard + np.where(prod_idx == 0, 0, np.floor(rng.random(cust_idx.size) ** 1.5 * span))
    opened = np.minimum(opened.astype(np.int64), end_day)

    # Ordinary closings (matured deposits, repaid loans), then closing everything on a
    # contractual leave.
    closed = np.full(cust_idx.size, -1, dtype=np.int64)
    reason = np.full(cust_idx.size, None, dtype=object)
    ordinary = (prod_idx != 0) & (rng.random(cust_idx.size) < 0.18)
    ord_close = opened + rng.integers(180, 1500, cust_idx.size)
    ord_ok = ordinary & (ord_close <= end_day) & (ord_close < leave)
    closed[ord_ok] = ord_close[ord_ok]
    reason[ord_ok] = np.where(np.isin(cats[prod_idx[ord_ok]], ["loan", "mortgage"]), "repaid",
                              "matured")
    contractual = ~c["silent"][cust_idx] & (leave <= end_day) & (closed < 0)
    elderly = c["age"][cust_idx] >= 80
    leave_reason = np.where(elderly & (rng.random(cust_idx.size) < 0.3), "deceased",
                            rng.choice(_CLOSE_REASONS, cust_idx.size, p=_CLOSE_P))
    # one reason per customer: take the reason drawn for the customer's first account
    first_of_cust = np.r_[True, cust_idx[1:] != cust_idx[:-1]]
    per_cust_reason = leave_reason[first_of_cust][np.cumsum(first_of_cust) - 1]
    closed[contractual] = leave[contractual] + rng.integers(0, 20, contractual.sum())
    closed = np.where(closed > end_day, -1, closed)
    reason[contractual & (closed >= 0)] = per_cust_reason[contractual & (closed >= 0)]
    # a few accounts are opened by the leaver late and closed with the rest
    closed = np.where((closed >= 0) & (closed < opened), opened, closed)

    account_ids = pl.select(pl.concat_str(pl.lit("A"), pl.Series(np.arange(1, cust_idx.size + 1))
                                          .cast(pl.String).str.zfill(8))).to_series()
    frame = pl.DataFrame({
        "account_id": account_ids,
        "customer_id": c["ids"].gather(cust_idx),
        "product_id": pl.Series(pids[prod_idx]),
        "opened": _dates(opened),
        "closed": _dates(closed, closed >= 0),
        "close_reason": pl.Series(reason.tolist(), dtype=pl.String),
    })
    # The customer's wealth is spread over the accounts by the products' typical shares.
    weights = shares[prod_idx] * rng.lognormal(0, 0.4, cust_idx.size)
    totals = np.bincount(cust_idx, weights=weights, minlength=n)
    base_balance = c["wealth"][cust_idx] * weights / np.maximum(totals[cust_idx], 1e-9)
    base_balance = np.where(cats[prod_idx] == "card", rng.gamma(2, 800, cust_idx.size), base_balance)
    base_balance = np.where(cats[prod_idx] == "mortgage",
                            c["wealth"][cust_idx] * rng.uniform(2, 6, cust_idx.size), base_balance)
    acct = {"cust": cust_idx, "prod": prod_idx, "opened": opened, "closed": closed,
            "base": base_balance, "ids": account_ids}
    return frame, acct


def _balances(rng, c: dict, acct: dict, end: dt.date, balance_months: int) -> pl.DataFrame:
    # month-end snapshot dates: the last `balance_months` month ends on or before as_of
    ends = []
    y, m = end.year, end.month
    nxt = dt.date(y + (m == 12), m % 12 + 1, 1)
    last = nxt - dt.timedelta(days=1)
    if last > end:
        y, m = (y - 1, 12) if m == 1 else (y, m - 1)
    for _ in range(balance_months):
        nxt = dt.date(y + (m == 12), m % 12 + 1, 1)
        ends.append((nxt - dt.timedelta(days=1) - _EPOCH).days)
        y, m = (y - 1, 12) if m == 1 else (y, m - 1)
    snap = np.array(sorted(ends), dtype=np.int64)
    # one snapshot date at a time keeps the temporaries at O(accounts)
    acc = np.arange(acct["cust"].size)
    parts = []
    for day_value in snap:
        open_now = (acct["opened"] <= day_value) & ((acct["closed"] < 0) | (day_value < acct["closed"]))
        a_idx = acc[open_now]
        day = np.full(a_idx.size, day_value)
        factor = _activity_factor(day, c, acct["cust"][a_idx])
        # balances follow activity (money moves out before a leave), stay put while dormant
        level = np.where(factor > 0, 0.2 + 0.8 * factor, 0.5)
        growth = 1.0 + 0.04 * (day_value - acct["opened"][a_idx]) / 365.0
        balance = np.round(acct["base"][a_idx] * level * rng.lognormal(0, 0.05, a_idx.size)
                           * growth, 2)
        # string ids per snapshot: the compact arrays never coexist with the whole table
        parts.append(pl.DataFrame({
            "account_id": acct["ids"].gather(a_idx),
            "date": pl.Series(day.astype(np.int32)).cast(pl.Date),
            "balance": balance,
        }))
    return pl.concat(parts)  # one month-end snapshot after another, as a bank files them


def _transactions(rng, c: dict, month_first: np.ndarray, month_len: np.ndarray,
                  end_day: int) -> pl.DataFrame:
    n, n_months = c["n"], month_first.size
    idx = np.arange(n)
    old = c["age"] >= 60
    chunks, n_done = [], 0
    # Month by month, in compact types: temporaries stay O(customers + one month), and
    # the string ids are made once at the end. Rows come in time order, like a ledger.
    for k in range(n_months):
        mid = month_first[k] + month_len[k] // 2
        factor = _activity_factor(np.full(n, mid), c, idx)
        counts = rng.poisson(1.3 * c["activity"] * factor * month_len[k] / 30.4375)
        rows = np.repeat(idx, counts)
        if rows.size == 0:
            continue
        day = month_first[k] + rng.integers(0, month_len[k], rows.size)
        day_factor = _activity_factor(day, c, rows)
        keep = (day_factor > 0) & (day <= end_day)
        rows, day, day_factor = rows[keep], day[keep], day_factor[keep]
        spend_scale = 20 + 0.002 * c["wealth"][rows] ** 0.9
        amount = rng.gamma(2.0, spend_scale / 2.0) * (0.5 + 0.5 * day_factor)
        refund = rng.random(rows.size) < 0.02
        amount = np.round(np.where(refund, -0.5 * amount, amount), 2)
        seconds = rng.integers(7 * 3600, 22 * 3600, rows.size)
        u = rng.random(rows.size)
        channel = np.where(old[rows], np.searchsorted([0.25, 0.35, 0.75, 0.9], u),
                           np.searchsorted([0.55, 0.8, 0.9, 0.97], u)).astype(np.uint8)
        month = pl.DataFrame({
            "_c": rows.astype(np.uint32),
            "_t": (day * 86400 + seconds) * 1_000_000,
            "amount": amount,
            "_ch": channel,
            "_card": rng.random(rows.size) < 0.35,
        }).sort("_t", "_c")
        # final columns month by month: only one month's compact arrays live at a time
        chunks.append(month.select(
            pl.concat_str(pl.lit("T"), (pl.int_range(1, pl.len() + 1) + n_done)
                          .cast(pl.String).str.zfill(9)).alias("transaction_id"),
            c["ids"].gather(month["_c"]).alias("customer_id"),
            pl.col("_t").cast(pl.Datetime("us")).alias("timestamp"),
            "amount",
            pl.col("_ch").replace_strict(dict(enumerate(_CHANNELS)), return_dtype=pl.String)
            .alias("channel"),
            pl.when(pl.col("_card")).then(pl.lit("P03")).otherwise(pl.lit("P01"))
            .alias("product_id"),
        ))
        n_done += month.height
    return pl.concat(chunks)


def _managers_and_assignments(rng, c: dict, end_day: int):
    n, nb = c["n"], c["n_branches"]
    wealth, onboarded = c["wealth"], ~c["prospect"]
    tier = np.select([wealth >= 5e6, wealth >= 1e6, wealth >= 1e5], [0, 1, 2], 3)
    tier = np.where(onboarded, tier, 3)
    levels = ("private_banking", "wealth", "branch")
    capacities = (60, 150, 400)
    mgr_branch, mgr_level, mgr_cap = [], [], []
    for lvl, cap in zip(range(3), capacities):
        need = np.bincount(c["branch"][tier == lvl], minlength=nb)
        if lvl == 0:  # private bankers sit in the first branch and serve every branch
            count = max(1, int(np.ceil(need.sum() * 1.1 / cap)))
            mgr_branch += [0] * count
        else:
            per = np.maximum(1, np.ceil(need * 1.1 / cap)).astype(int)
            mgr_branch += list(np.repeat(np.arange(nb), per))
            count = int(per.sum())
        mgr_level += [lvl] * count
        mgr_cap += list(np.round(cap * rng.uniform(0.85, 1.15, count)).astype(int))
    n_mgr = len(mgr_level)
    mgr_branch, mgr_level, mgr_cap = map(np.asarray, (mgr_branch, mgr_level, mgr_cap))
    active = rng.random(n_mgr) >= 0.03
    managers = pl.DataFrame({
        "manager_id": pl.select(pl.concat_str(pl.lit("M"), pl.Series(np.arange(1, n_mgr + 1))
                                              .cast(pl.String).str.zfill(5))).to_series(),
        "branch_id": pl.select(pl.concat_str(pl.lit("B"), pl.Series(mgr_branch + 1)
                                             .cast(pl.String).str.zfill(2))).to_series(),
        "level": pl.Series(np.array(levels)[mgr_level]),
        "capacity": mgr_cap.astype(np.int64),
        "active": active,
    })
    # Current book: most VIPs have an owner of the right level in their branch; some were
    # never assigned (new VIPs) and some sit with an inactive manager (a leaver's book).
    load = np.zeros(n_mgr, dtype=np.int64)
    a_cust, a_mgr, a_role, a_since = [], [], [], []
    vip = np.nonzero((tier < 3) & (rng.random(n) < 0.88))[0]
    rng.shuffle(vip)
    for i in vip:
        lvl = tier[i]
        pool = np.nonzero((mgr_level == lvl) & ((mgr_branch == c["branch"][i]) | (lvl == 0))
                          & (load < mgr_cap))[0]
        if pool.size == 0:
            continue
        j = pool[rng.integers(pool.size)]
        load[j] += 1
        a_cust.append(i)
        a_mgr.append(j)
        a_role.append("primary")
        a_since.append(max(int(c["onboard"][i]), end_day - int(rng.integers(0, 2000))))
        if lvl == 0 and rng.random() < 0.7:
            backups = np.nonzero((mgr_level == 0) & (np.arange(n_mgr) != j))[0]
            if backups.size:
                a_cust.append(i)
                a_mgr.append(backups[rng.integers(backups.size)])
                a_role.append("backup")
                a_since.append(a_since[-1])
    a_cust, a_mgr = np.asarray(a_cust, dtype=np.int64), np.asarray(a_mgr, dtype=np.int64)
    assignments = pl.DataFrame({
        "customer_id": c["ids"].gather(a_cust),
        "manager_id": managers["manager_id"].gather(a_mgr),
        "role": pl.Series(a_role, dtype=pl.String),
        "since": _dates(np.minimum(np.asarray(a_since, dtype=np.int64), end_day)),
    })
    return managers, assignments


def _contacts_and_complaints(rng, c: dict, assignments: pl.DataFrame, end_day: int,
                             grid_start: int):
    n = c["n"]
    span = end_day - grid_start + 1
    assigned = np.zeros(n, dtype=bool)
    if assignments.height:
        pos = assignments["customer_id"].str.slice(1).cast(pl.Int64).to_numpy() - 1
        assigned[pos] = True
    rate = np.where(assigned, 6.0, 0.4) * span / 365.25 * (~c["prospect"] | (rng.random(n) < 0.3))
    counts = rng.poisson(rate)
    rows = np.repeat(np.arange(n), counts)
    day = grid_start + rng.integers(0, span, rows.size)
    kind = rng.choice(np.array(["call", "visit", "email", "sms"]), rows.size, p=[0.5, 0.15, 0.2, 0.15])
    outcome = rng.choice(np.array(["reached", "no_answer", "declined", "sale"]), rows.size,
                         p=[0.55, 0.25, 0.12, 0.08])
    # the bank cannot contact a customer before it knows them (drawn first, then
    # dropped, so every other row and table stays as it was for the seed)
    known = day >= c["first_seen"][rows]
    rows, day, kind, outcome = rows[known], day[known], kind[known], outcome[known]
    contacts = pl.DataFrame({"customer_id": c["ids"].gather(rows), "date": _dates(day),
                             "kind": pl.Series(kind), "outcome": pl.Series(outcome)}).sort(
        "customer_id", "date")
    # complaints concentrate in the months before a leave and among complaint-prone customers
    base = np.where(c["complaint_prone"], 0.8, 0.05) * span / 365.25 * ~c["prospect"]
    counts = rng.poisson(base)
    rows = np.repeat(np.arange(n), counts)
    day = grid_start + rng.integers(0, span, rows.size)
    leave = c["leave"]
    pre_leave = (rng.random(n) < 0.35) & (leave <= end_day + 120) & (leave - 120 >= grid_start) \
        & ~c["prospect"]
    extra = np.nonzero(pre_leave)[0]
    rows = np.concatenate([rows, extra])
    day = np.concatenate([day, leave[extra] - rng.integers(10, 120, extra.size)])
    ok = (day <= end_day) & (day >= c["onboard"][rows])
    rows, day = rows[ok], day[ok]
    kind = rng.choice(np.array(["fees", "service", "app", "product"]), rows.size, p=[0.35, 0.3, 0.2, 0.15])
    resolved = rng.choice(np.array(["resolved", "open", "escalated"]), rows.size, p=[0.75, 0.15, 0.10])
    complaints = pl.DataFrame({"customer_id": c["ids"].gather(rows), "date": _dates(day),
                               "kind": pl.Series(kind), "outcome": pl.Series(resolved)}).sort(
        "customer_id", "date")
    return contacts, complaints


def _truth(c: dict, end_day: int) -> pl.DataFrame:
    far = np.iinfo(np.int64).max // 8
    onboard, leave, react = c["onboard"], c["leave"], c["react"]
    state = np.select(
        [
            c["prospect"],
            (react <= end_day) & (end_day - react < 365),
            (leave <= end_day) & ~c["silent"],
            (leave <= end_day) & c["silent"] & (react > end_day),
            leave - c["decline_days"] <= end_day,
            end_day - onboard < 90,
            end_day - onboard < 365,
        ],
        ["prospect", "reactivated", "churned", "dormant", "declining", "onboarding", "growth"],
        "mature",
    )

    def as_date(x):
        return _dates(x, x < far)

    return pl.DataFrame({
        "customer_id": c["ids"],
        "latent_state": pl.Series(state),
        "onboard_date": as_date(onboard).alias("onboard_date"),
        "leave_date": as_date(leave).alias("leave_date"),
        "leave_kind": pl.Series(np.where(c["prospect"], None,
                                         np.where(c["silent"], "silent", "closure")).tolist(),
                                dtype=pl.String),
        "reactivation_date": as_date(react).alias("reactivation_date"),
    })


def _make_messy(tables: dict, end: dt.date) -> dict:
    out = dict(tables)
    cust = tables["customers"]
    first = cust.row(0, named=True)
    bad_customers = pl.DataFrame([
        {**first},                                   # duplicate key
        {**first, "customer_id": None},              # null key
        {**first, "customer_id": "CX_BADDATE"},      # unreadable date, fixed below
    ], schema=cust.schema)
    customers = pl.concat([cust, bad_customers]).with_columns(
        pl.col("first_seen").cast(pl.String))
    customers = customers.with_columns(
        pl.when(pl.col("customer_id") == "CX_BADDATE").then(pl.lit("2021-13-45"))
        .otherwise(pl.col("first_seen")).alias("first_seen"))
    out["customers"] = customers

    tx = tables["transactions"]
    proto = tx.row(0, named=True)
    later = dt.datetime.combine(end + dt.timedelta(days=3), dt.time(12))
    bad_tx = pl.DataFrame([
        {**proto, "transaction_id": "TX_NAN", "amount": float("nan")},
        {**proto, "transaction_id": "TX_INF", "amount": float("inf")},
        {**proto, "transaction_id": "TX_FUTURE", "timestamp": later},
        {**proto, "transaction_id": "TX_UNKNOWN", "customer_id": "C_UNKNOWN"},
        {**proto, "transaction_id": "TX_NOPRODUCT", "product_id": "P99"},
        {**proto, "transaction_id": "TX_NULLCUST", "customer_id": None},
        {**proto},                                   # duplicate transaction_id
    ], schema=tx.schema)
    out["transactions"] = pl.concat([tx, bad_tx])

    hold = tables["holdings"]
    hproto = hold.row(0, named=True)
    bad_h = pl.DataFrame([
        {**hproto, "account_id": "A_BADPRODUCT", "product_id": "P99"},
        {**hproto, "account_id": "A_CLOSEDEARLY", "opened": dt.date(2024, 5, 1),
         "closed": dt.date(2024, 1, 1), "close_reason": "other"},
    ], schema=hold.schema)
    out["holdings"] = pl.concat([hold, bad_h])

    bal = tables["balances"]
    bproto = bal.row(0, named=True)
    out["balances"] = pl.concat([bal, pl.DataFrame([
        {**bproto, "date": dt.date(1990, 1, 31), "balance": float("nan")},
        {**bproto, "account_id": "A_MISSING", "date": dt.date(1990, 2, 28)},
    ], schema=bal.schema)])
    mgr = tables["managers"]
    out["managers"] = pl.concat([mgr, pl.DataFrame([
        {**mgr.row(0, named=True), "manager_id": "M_NEG", "capacity": -5},
        {**mgr.row(0, named=True), "manager_id": "M_LEVEL", "level": "junior"},
    ], schema=mgr.schema)])
    return out
