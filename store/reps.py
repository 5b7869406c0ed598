"""Reps: the team roster. Queries for the `reps` table.

A rep's id is a stable slug of the name (`Priya Raman` -> `priya-raman`) unless one is given.
Names seen in transcripts resolve to a rep by id, name or alias, case-insensitively.
"""
from __future__ import annotations

import json
import re
import unicodedata
from datetime import date
from typing import Any, Iterable

from .db import Store, StoreError, now_iso

_FIELDS = ("team", "manager", "segment", "hire_date", "quota", "email")

MAX_NAME = 200  # a person's name, not a paragraph pasted by mistake


def slugify(name: str) -> str:
    """`Megan O'Brien` -> `megan-obrien`; `Élena Volkova` -> `elena-volkova`."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    text = re.sub(r"['’`]", "", text.lower())
    slug = re.sub(r"[^a-z0-9]+", "-", text).strip("-")
    return slug[:80]


def _norm(name: str) -> str:
    return " ".join(str(name).split()).casefold()


def _row(r: dict | None) -> dict | None:
    if r is None:
        return None
    out = dict(r)
    if isinstance(out.get("aliases"), list):
        return out
    try:
        out["aliases"] = json.loads(out.get("aliases") or "[]")
    except ValueError:
        out["aliases"] = []
    return out


def _check_date(value: Any, field: str) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, date):
        return value.isoformat()
    try:
        return date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise StoreError(f"{field}: '{value}' is not a date; use YYYY-MM-DD") from None


def _check_quota(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        q = float(value)
    except (TypeError, ValueError):
        raise StoreError(f"quota: '{value}' is not a number") from None
    if q < 0:
        raise StoreError(f"quota: {q} is negative")
    return q


def upsert_rep(
    store: Store,
    name: str,
    *,
    id: str | None = None,
    team: str | None = None,
    manager: str | None = None,
    segment: str | None = None,
    hire_date: str | date | None = None,
    quota: float | None = None,
    email: str | None = None,
    aliases: Iterable[str] | None = None,
) -> dict:
    """Create the rep, or update the fields given (others keep their values). Returns the row.

    Without `id`, the rep is found by its name's slug (or an existing rep whose name or alias is
    `name`), so `upsert_rep(store, "priya raman", team="EMEA")` updates `priya-raman`."""
    name = " ".join(str(name or "").split())
    if not name:
        raise StoreError("rep name is empty; give the rep's full name as it appears in transcripts")
    if len(name) > MAX_NAME:
        raise StoreError(f"rep name is {len(name)} characters long (at most {MAX_NAME}): give the rep's full name, "
                         f"as it appears in transcripts, starting '{name[:40]}…'")
    rid = id.strip() if id else None
    if rid is not None and not re.fullmatch(r"[a-z0-9][a-z0-9_\-]*", rid):
        raise StoreError(f"rep id '{rid}' is not a slug: use lowercase letters, digits, '-' and '_'")
    values = {
        "team": team,
        "manager": manager,
        "segment": segment,
        "hire_date": _check_date(hire_date, "hire_date"),
        "quota": _check_quota(quota),
        "email": email,
    }
    with store.transaction() as db:
        existing = None
        if rid is not None:
            existing = store.one("select * from reps where id = ?", [rid])
        else:
            rid = slugify(name)
            if not rid:
                raise StoreError(f"rep name '{name}' has no letters or digits to make an id from; pass an id")
            existing = store.one("select * from reps where id = ?", [rid])
            if existing is None:
                found = resolve_rep(store, name)
                if found is not None:
                    existing, rid = found, found["id"]
        now = now_iso()
        old_aliases = _row(existing)["aliases"] if existing else []
        merged = list(old_aliases)
        for a in aliases or []:
            a = " ".join(str(a).split())
            if a and _norm(a) not in {_norm(x) for x in merged} and _norm(a) != _norm(name):
                merged.append(a)
        if existing is None:
            row = {"id": rid, "name": name, **values, "aliases": json.dumps(merged), "active": 1, "created_at": now, "updated_at": now}
            cols = ", ".join(row)
            db.execute(f"insert into reps ({cols}) values ({', '.join('?' for _ in row)})", list(row.values()))
        else:
            changes = {k: v for k, v in values.items() if v is not None}
            if _norm(existing["name"]) == _norm(name):
                changes["name"] = existing["name"]  # same name, other case/spacing: keep the stored spelling
                other = name
            elif id is not None:
                changes["name"] = name  # renamed (by id): the old name stays an alias
                other = existing["name"]
            else:
                changes["name"] = existing["name"]  # found through an alias: keep the name
                other = name
            if _norm(other) != _norm(changes["name"]) and _norm(other) not in {_norm(x) for x in merged}:
                merged.append(other)
            merged = [a for a in merged if _norm(a) != _norm(changes["name"])]
            changes["aliases"] = json.dumps(merged)
            changes["active"] = 1
            changes["updated_at"] = now
            sets = ", ".join(f"{k} = ?" for k in changes)
            db.execute(f"update reps set {sets} where id = ?", [*changes.values(), rid])
    return get_rep(store, rid)


_PERIOD = re.compile(r"^\d{4}(-\d{2}|-Q[1-4])?$")


def set_quota(store: Store, rep_id: str, period: str, *, quota: Any = None, attained: Any = None) -> dict:
    """Quota and attainment of one rep for one period ('2026-03', '2026-Q2' or '2026'). A value not
    given keeps the period's stored one (a new period's quota defaults to the rep's quota)."""
    period = str(period).strip()
    if not _PERIOD.match(period):
        raise StoreError(f"period: '{period}' is not a month (2026-03), a quarter (2026-Q2) or a year (2026)")
    rep = get_rep(store, rep_id)
    with store.transaction() as db:
        old = store.one("select quota, attained from quotas where rep_id = ? and period = ?", [rep["id"], period]) or {}
        q = _check_quota(quota) if quota is not None else old.get("quota", rep.get("quota"))
        a = _check_quota(attained) if attained is not None else old.get("attained")
        db.execute(
            "insert into quotas (rep_id, period, quota, attained) values (?, ?, ?, ?)"
            " on conflict (rep_id, period) do update set quota = excluded.quota, attained = excluded.attained",
            [rep["id"], period, q, a],
        )
    return {"rep_id": rep["id"], "period": period, "quota": q, "attained": a}


def resolve_rep(store: Store, name: str | None) -> dict | None:
    """The rep whose id, name or alias is `name` (case- and space-insensitive), else None."""
    if not name or not str(name).strip():
        return None
    raw = str(name).strip()
    row = store.one("select * from reps where id = ?", [raw]) or store.one("select * from reps where id = ?", [slugify(raw)])
    if row:
        return _row(row)
    key = _norm(raw)
    for r in store.query("select * from reps order by id"):
        rr = _row(r)
        if _norm(rr["name"]) == key or key in {_norm(a) for a in rr["aliases"]}:
            return rr
    return None


def get_rep(store: Store, id_or_name: str) -> dict:
    """The rep by id, name or alias; StoreError naming the known reps when there is none."""
    rep = resolve_rep(store, id_or_name)
    if rep is None:
        known = [r["id"] for r in store.query("select id from reps order by id")]
        shown = ", ".join(known[:20]) + (f", ... ({len(known)} in all)" if len(known) > 20 else "")
        raise StoreError(f"unknown rep '{id_or_name}' (known: {shown or 'none'}); add it with `coachloop rep add`")
    return rep


def list_reps(store: Store, *, team: str | None = None, segment: str | None = None, active: bool | None = True) -> list[dict]:
    sql, params = "select * from reps where 1=1", []
    if team:
        sql += " and team = ?"
        params.append(team)
    if segment:
        sql += " and segment = ?"
        params.append(segment)
    if active is not None:
        sql += " and active = ?"
        params.append(1 if active else 0)
    return [_row(r) for r in store.query(sql + " order by name", params)]


def roster(store: Store) -> list[str]:
    """Every name and alias of the active reps: what `identify_rep` matches speakers against."""
    names: list[str] = []
    for r in list_reps(store):
        for n in [r["name"], *r["aliases"]]:
            if n and n not in names:
                names.append(n)
    return names
