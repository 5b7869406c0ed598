"""Data in from the CRM: reps (with quota per period and attainment) and deals (stage history,
outcome, amount, linked calls) from the CSV a Salesforce or HubSpot report exports.

    import_reps(coach_or_store, path, mapping=None, *, period=None) -> dict
    import_deals(coach_or_store, path, mapping=None) -> dict

Columns are matched by name, case- and space-insensitively, against the usual Salesforce and
HubSpot headers (see REP_COLUMNS / DEAL_COLUMNS); `mapping` adds or overrides them:
`{"Owner Name": "owner"}`, or a dict / YAML / JSON file shaped `{"columns": {...},
"date_format": "%d/%m/%Y"}`. Map a column to `ignore` to skip it.

All or nothing: every row is checked first, then everything is written in one transaction. When
any row is bad, nothing is written and `ImportFailed` lists every bad row (line number, column,
message).
"""
from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from store.db import Store, StoreError, now_iso
from store.deals import parse_when, record_deal
from store.reps import resolve_rep, set_quota, slugify, upsert_rep

REP_FIELDS = ("name", "id", "email", "team", "manager", "segment", "hire_date", "quota", "period", "attained")
DEAL_FIELDS = ("id", "name", "owner", "stage", "amount", "created", "close_date", "stage_date", "won", "closed", "outcome", "segment", "calls")

# normalised header -> field. Salesforce user / quota reports, HubSpot users, plain names.
REP_COLUMNS = {
    "full name": "name", "name": "name", "rep": "name", "rep name": "name", "user": "name", "user name": "name",
    "sales rep": "name", "owner": "name", "first and last name": "name",
    "user id": "id", "rep id": "id",
    "email": "email", "e-mail": "email", "email address": "email",
    "team": "team", "role": "team", "user role": "team", "sales team": "team",
    "manager": "manager", "manager name": "manager", "manager: full name": "manager",
    "segment": "segment", "market segment": "segment",
    "hire date": "hire_date", "start date": "hire_date", "date hired": "hire_date",
    "quota": "quota", "quota amount": "quota", "target": "quota",
    "quota period": "period", "period": "period", "month": "period", "fiscal period": "period",
    "attained": "attained", "attainment": "attained", "quota attained": "attained", "closed won amount": "attained",
    "closed won": "attained",
}
DEAL_COLUMNS = {
    "opportunity id": "id", "record id": "id", "deal id": "id", "id": "id", "opportunity id (18)": "id",
    "opportunity name": "name", "deal name": "name", "name": "name",
    "opportunity owner": "owner", "deal owner": "owner", "owner": "owner", "owner name": "owner", "rep": "owner",
    "stage": "stage", "deal stage": "stage", "to stage": "stage",
    "amount": "amount", "amount (usd)": "amount", "deal amount": "amount",
    "close date": "close_date", "closed date": "close_date",
    "created date": "created", "create date": "created", "created": "created",
    "stage date": "stage_date", "last stage change date": "stage_date", "date entered stage": "stage_date",
    "stage change date": "stage_date", "last modified": "stage_date", "edit date": "stage_date",
    "won": "won", "closed": "closed", "is won": "won", "is closed": "closed",
    "outcome": "outcome", "segment": "segment", "market segment": "segment",
    "call ids": "calls", "linked calls": "calls", "calls": "calls", "call id": "calls",
}
DATE_FORMATS = ("%Y-%m-%d", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%m/%d/%Y", "%m/%d/%Y %H:%M", "%m/%d/%Y %I:%M %p", "%m/%d/%Y %I:%M:%S %p", "%Y/%m/%d")
TRUE = {"1", "true", "yes", "y", "t", "won", "closed"}
FALSE = {"0", "false", "no", "n", "f", ""}


@dataclass(frozen=True)
class RowError:
    line: int  # line of the file (the header is line 1)
    column: str | None
    message: str

    def __str__(self) -> str:
        return f"line {self.line}" + (f", column '{self.column}'" if self.column else "") + f": {self.message}"

    def as_dict(self) -> dict:
        return {"line": self.line, "column": self.column, "message": self.message}


class ImportFailed(ValueError):
    """Nothing was imported. `errors` lists every bad row; `path` names the file."""

    def __init__(self, path: str, errors: list[RowError], header: str | None = None):
        self.path, self.errors = path, errors
        lines = [header or f"{path}: nothing imported, {len(errors)} bad row(s) (fix them and import again):"]
        lines += [f"  {path}: {e}" for e in errors]
        super().__init__("\n".join(lines))


# --------------------------------------------------------------------------- mapping and parsing helpers


def _norm(header: str) -> str:
    return " ".join(str(header).replace("\ufeff", "").replace("_", " ").split()).casefold()


def load_mapping(mapping: Any) -> tuple[dict[str, str], list[str]]:
    """-> ({normalised column: field}, date formats). `mapping` is None, a dict, a list of
    'Column=field' strings, or a path to a YAML/JSON file."""
    if mapping is None:
        return {}, []
    if isinstance(mapping, (str, Path)) and not isinstance(mapping, dict):
        p = Path(mapping)
        if not p.is_file():
            raise ValueError(f"mapping file not found: {p}")
        text = p.read_text(encoding="utf-8")
        try:
            data = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:
            raise ValueError(f"{p}: not valid {'JSON' if p.suffix.lower() == '.json' else 'YAML'}: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{p}: a mapping file is a dict of 'CSV column: field' (or columns: {{...}}, date_format: ...)")
        mapping = data
    if isinstance(mapping, (list, tuple)):
        d = {}
        for item in mapping:
            if "=" not in str(item):
                raise ValueError(f"--map '{item}': use COLUMN=field, e.g. --map 'Owner Name=owner'")
            col, fld = str(item).rsplit("=", 1)
            d[col.strip()] = fld.strip()
        mapping = d
    formats: list[str] = []
    cols = mapping
    if "columns" in mapping and isinstance(mapping["columns"], dict):
        cols = mapping["columns"]
        fmt = mapping.get("date_format") or mapping.get("date_formats") or []
        formats = [fmt] if isinstance(fmt, str) else list(fmt)
    elif "date_format" in mapping:
        fmt = mapping["date_format"]
        formats = [fmt] if isinstance(fmt, str) else list(fmt)
        cols = {k: v for k, v in mapping.items() if k not in ("date_format", "date_formats")}
    return {_norm(k): str(v).strip() for k, v in cols.items()}, formats


def _read_csv(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    raw = path.read_bytes()
    if b"\x00" in raw[:65536]:
        raise ValueError(f"{path}: contains NUL bytes: this looks like a binary file (a spreadsheet?), not a CSV; export the report as CSV")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")  # Excel on Windows
    sample = text[:4096]
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    rows: list[tuple[int, list[str]]] = []
    header: list[str] | None = None
    start = 1
    blank_seen = False
    cells_iter = iter(reader)
    while True:
        try:
            cells = next(cells_iter)
        except StopIteration:
            break
        except csv.Error as exc:
            raise ValueError(f"{path}: line {reader.line_num}: not a readable CSV ({exc}); export the report as CSV") from None
        line = start
        start = reader.line_num + 1
        if header is None:
            if not any(c.strip() for c in cells):
                continue
            header = [c.strip() for c in cells]
            continue
        filled = [c for c in cells if c.strip()]
        if not filled:
            blank_seen = True
            continue
        if blank_seen and len(filled) <= 1:
            continue  # report footer: "Copyright (c) ... salesforce.com", "Generated By: ..."
        rows.append((line, cells))
    if header is None:
        raise ValueError(f"{path}: the file is empty; expected a header row and one row per record")
    return header, rows


def parse_date(value: str, formats: list[str]) -> str:
    """A date or time in one of `formats` (or the defaults) -> ISO 8601 (UTC for times)."""
    text = value.strip()
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if len(text) <= 10:
            return dt.date().isoformat()
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        return dt.astimezone(timezone.utc).replace(microsecond=0).isoformat()
    except ValueError:
        pass
    for fmt in formats or DATE_FORMATS:
        try:
            dt = datetime.strptime(text, fmt)
        except ValueError:
            continue
        if "%H" in fmt or "%I" in fmt:
            return dt.replace(tzinfo=timezone.utc).isoformat()
        return dt.date().isoformat()
    shown = ", ".join(formats or ("YYYY-MM-DD", "MM/DD/YYYY", "YYYY-MM-DD HH:MM"))
    raise ValueError(f"'{value}' is not a date ({shown}); set date_format in a mapping file for other layouts")


_AMOUNT = re.compile(r"^(?:[A-Z]{3}\s*)?[$€£¥]?\s*(-?[\d,. ]*\d)\s*(?:[A-Z]{3})?$")


def parse_amount(value: str) -> float:
    text = value.strip().replace("\u00a0", " ")
    m = _AMOUNT.match(text)
    if not m:
        raise ValueError(f"'{value}' is not an amount (e.g. 12500, $12,500.00, USD 12500)")
    num = m.group(1).replace(" ", "").replace(",", "")
    try:
        out = float(num)
    except ValueError:
        raise ValueError(f"'{value}' is not an amount (e.g. 12500, $12,500.00, USD 12500)") from None
    if out < 0:
        raise ValueError(f"'{value}' is negative")
    return out


def parse_bool(value: str) -> bool:
    v = value.strip().casefold()
    if v in TRUE:
        return True
    if v in FALSE:
        return False
    raise ValueError(f"'{value}' is not true/false (1/0, yes/no)")


def parse_period(value: str) -> str:
    """'2026-03', 'Mar 2026', '03/2026', '2026-Q1', 'Q1 2026', '2026-03-01' -> '2026-03' / '2026-Q1'."""
    v = value.strip()
    m = re.fullmatch(r"(\d{4})-(\d{1,2})(?:-\d{1,2})?", v)
    if m and 1 <= int(m.group(2)) <= 12:
        return f"{m.group(1)}-{int(m.group(2)):02d}"
    m = re.fullmatch(r"(\d{1,2})/(\d{4})", v)
    if m and 1 <= int(m.group(1)) <= 12:
        return f"{m.group(2)}-{int(m.group(1)):02d}"
    m = re.fullmatch(r"(?:(\d{4})[- ]?[Qq]([1-4])|[Qq]([1-4])[- ]?(\d{4}))", v)
    if m:
        return f"{m.group(1) or m.group(4)}-Q{m.group(2) or m.group(3)}"
    for fmt in ("%b %Y", "%B %Y", "%b-%Y", "%Y %b"):
        try:
            return datetime.strptime(v, fmt).strftime("%Y-%m")
        except ValueError:
            pass
    raise ValueError(f"'{value}' is not a quota period (2026-03, Mar 2026, 2026-Q1)")


def _columns(header: list[str], defaults: dict[str, str], fields: tuple, mapping: dict[str, str], path: Path) -> dict[str, int]:
    """field -> column index, from the header and the mapping."""
    for col, fld in mapping.items():
        if fld != "ignore" and fld not in fields:
            raise ValueError(f"mapping: column '{col}' maps to unknown field '{fld}'; fields are: {', '.join(fields)} (or ignore)")
    out: dict[str, int] = {}
    for i, h in enumerate(header):
        key = _norm(h)
        fld = mapping.get(key) or defaults.get(key)
        if not fld or fld == "ignore":
            continue
        if fld in out:
            if key in mapping and _norm(header[out[fld]]) not in mapping:
                out[fld] = i  # an explicit mapping wins over a default match
            continue
        out[fld] = i
    return out


def _store(coach_or_store) -> Store:
    return coach_or_store.store if hasattr(coach_or_store, "store") else coach_or_store


def _cell(cells: list[str], idx: dict[str, int], fld: str) -> str:
    i = idx.get(fld)
    if i is None or i >= len(cells):
        return ""
    return cells[i].strip()


# --------------------------------------------------------------------------- reps


def import_reps(coach_or_store, path: str | Path, mapping: Any = None, *, period: str | None = None) -> dict:
    """Import reps (one row per rep, or per rep and quota period) from a CSV export.

    Fields: name (required), id, email, team (Salesforce 'Role' lands here), manager, segment,
    hire_date, quota, period, attained. A row with a quota and a period (its own column, or
    `period=` for the whole file) writes the quotas table; `attained` needs a period."""
    store = _store(coach_or_store)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"reps file not found: {path}")
    cmap, formats = load_mapping(mapping)
    header, rows = _read_csv(path)
    idx = _columns(header, REP_COLUMNS, REP_FIELDS, cmap, path)
    if "name" not in idx:
        raise ImportFailed(str(path), [RowError(1, None, f"no column for the rep's name; columns are: {', '.join(header)}. "
                                                       "Map one with --map 'COLUMN=name'")],
                           header=f"{path}: nothing imported:")
    default_period = parse_period(period) if period else None
    colname = {f: header[i] for f, i in idx.items()}
    errors: list[RowError] = []
    records: list[tuple[int, dict]] = []
    for line, cells in rows:
        rec: dict[str, Any] = {}
        bad = False

        def fail(fld: str | None, msg: str) -> None:
            nonlocal bad
            bad = True
            errors.append(RowError(line, colname.get(fld) if fld else None, msg))

        rec["name"] = " ".join(_cell(cells, idx, "name").split())
        if not rec["name"]:
            fail("name", "the rep's name is empty")
        for fld in ("id", "email", "team", "manager", "segment"):
            rec[fld] = _cell(cells, idx, fld) or None
        if rec["id"] and not re.fullmatch(r"[a-z0-9][a-z0-9_\-]*", rec["id"]):
            fail("id", f"'{rec['id']}' is not an id: use lowercase letters, digits, '-' and '_' (or drop the column)")
        if rec["email"] and "@" not in rec["email"]:
            fail("email", f"'{rec['email']}' is not an email address")
        for fld, parse in (("hire_date", lambda v: parse_date(v, formats)[:10]), ("quota", parse_amount), ("attained", parse_amount), ("period", parse_period)):
            v = _cell(cells, idx, fld)
            rec[fld] = None
            if v:
                try:
                    rec[fld] = parse(v)
                except ValueError as exc:
                    fail(fld, str(exc))
        rec["period"] = rec["period"] or default_period
        if rec["attained"] is not None and not rec["period"] and not bad:
            fail("attained", "attainment needs a quota period: add a 'Quota Period' column or pass --period YYYY-MM")
        if not bad:
            records.append((line, rec))
    if errors:
        raise ImportFailed(str(path), errors)
    created = updated = quotas = 0
    seen: set[str] = set()
    with store.transaction():
        for line, rec in records:
            try:
                existed = (store.one("select id from reps where id = ?", [rec["id"]]) if rec["id"] else resolve_rep(store, rec["name"])) is not None
                rep = upsert_rep(store, rec["name"], id=rec["id"], team=rec["team"], manager=rec["manager"], segment=rec["segment"],
                                 hire_date=rec["hire_date"], quota=rec["quota"] if not rec["period"] else None, email=rec["email"])
                if rep["id"] not in seen:
                    seen.add(rep["id"])
                    created += not existed
                    updated += existed
                if rec["period"] and (rec["quota"] is not None or rec["attained"] is not None):
                    set_quota(store, rep["id"], rec["period"], quota=rec["quota"], attained=rec["attained"])
                    quotas += 1
            except StoreError as exc:
                errors.append(RowError(line, None, str(exc)))
        if errors:
            raise ImportFailed(str(path), errors)
        summary = {"kind": "reps", "file": str(path), "rows": len(records), "created": created, "updated": updated,
                   "quota_periods": quotas, "ignored_columns": [h for i, h in enumerate(header) if i not in idx.values() and h]}
        store.event("import.reps", subject=path.name, data={k: v for k, v in summary.items() if k != "ignored_columns"})
    return summary


# --------------------------------------------------------------------------- deals


def _outcome(rec: dict, stage: str | None) -> str:
    if rec.get("outcome"):
        return rec["outcome"]
    if rec.get("closed") is not None:
        if not rec["closed"]:
            return "open"
        if rec.get("won") is not None:
            return "won" if rec["won"] else "lost"
    if rec.get("won"):
        return "won"
    s = re.sub(r"[^a-z]", "", (stage or "").casefold())
    if s in ("closedwon", "won") or s.endswith("closedwon"):
        return "won"
    if s in ("closedlost", "lost") or s.endswith("closedlost"):
        return "lost"
    if rec.get("closed"):
        return "lost" if rec.get("won") is False else "open"
    return "open"


def import_deals(coach_or_store, path: str | Path, mapping: Any = None) -> dict:
    """Import deals from a Salesforce opportunity report or a HubSpot deals export.

    Fields: id (else a slug of the name), name, owner (a rep already imported: id, name or alias),
    stage, amount, created, close_date, stage_date, won, closed, outcome, segment, calls (call ids
    or source names, separated by ';' or ','). Several rows for one deal are its stage history,
    applied in stage_date order. Outcome comes from `outcome`, else Won/Closed, else the stage
    name ('Closed Won', 'closedlost', ...)."""
    store = _store(coach_or_store)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"deals file not found: {path}")
    cmap, formats = load_mapping(mapping)
    header, rows = _read_csv(path)
    idx = _columns(header, DEAL_COLUMNS, DEAL_FIELDS, cmap, path)
    missing = [f for f in ("owner",) if f not in idx]
    if "id" not in idx and "name" not in idx:
        missing.append("id or name")
    if "stage" not in idx and "outcome" not in idx and "won" not in idx:
        missing.append("stage (or outcome)")
    if missing:
        raise ImportFailed(str(path), [RowError(1, None, f"no column for {', '.join(missing)}; columns are: {', '.join(header)}. "
                                                        "Map them with --map 'COLUMN=field'")],
                           header=f"{path}: nothing imported:")
    colname = {f: header[i] for f, i in idx.items()}
    errors: list[RowError] = []
    records: list[tuple[int, dict]] = []
    owners: dict[str, str | None] = {}
    for line, cells in rows:
        rec: dict[str, Any] = {}
        bad = False

        def fail(fld: str | None, msg: str) -> None:
            nonlocal bad
            bad = True
            errors.append(RowError(line, colname.get(fld) if fld else None, msg))

        rec["name"] = _cell(cells, idx, "name") or None
        rec["id"] = _cell(cells, idx, "id") or (slugify(rec["name"]) if rec["name"] else None)
        if not rec["id"]:
            fail("id" if "id" in idx else "name", "the deal has no id and no name")
        owner = _cell(cells, idx, "owner")
        if not owner:
            fail("owner", "the deal owner is empty")
        else:
            if owner not in owners:
                found = resolve_rep(store, owner)
                owners[owner] = found["id"] if found else None
            rec["rep_id"] = owners[owner]
            if rec["rep_id"] is None:
                fail("owner", f"'{owner}' is not a known rep; import reps first (`coachloop import reps FILE.csv`) or fix the name")
        rec["stage"] = _cell(cells, idx, "stage") or None
        rec["segment"] = _cell(cells, idx, "segment") or None
        for fld, parse in (("amount", parse_amount), ("created", lambda v: parse_date(v, formats)),
                           ("close_date", lambda v: parse_date(v, formats)), ("stage_date", lambda v: parse_date(v, formats)),
                           ("won", parse_bool), ("closed", parse_bool)):
            v = _cell(cells, idx, fld)
            rec[fld] = None
            if v:
                try:
                    rec[fld] = parse(v)
                except ValueError as exc:
                    fail(fld, str(exc))
        out = _cell(cells, idx, "outcome").casefold()
        rec["outcome"] = None
        if out:
            norm = {"won": "won", "closed won": "won", "win": "won", "lost": "lost", "closed lost": "lost", "loss": "lost",
                    "open": "open", "in progress": "open"}.get(out)
            if norm is None:
                fail("outcome", f"'{out}' is not an outcome (won, lost, open)")
            rec["outcome"] = norm
        if not bad:
            rec["outcome"] = _outcome(rec, rec["stage"])
            if rec["outcome"] in ("won", "lost") and not rec["close_date"] and not rec["stage_date"]:
                fail("close_date" if "close_date" in idx else None, f"the deal is {rec['outcome']} but has no close date")
            if rec["created"] and rec["close_date"] and rec["close_date"][:10] < rec["created"][:10] and rec["outcome"] != "open":
                fail("close_date", f"close date {rec['close_date'][:10]} is before the created date {rec['created'][:10]}")
        calls_txt = _cell(cells, idx, "calls")
        rec["calls"] = []
        for ref in [c.strip() for c in re.split(r"[;,|]", calls_txt) if c.strip()]:
            row = store.one("select id from calls where id = ? or source_name = ? order by id limit 1",
                            [int(ref) if ref.isdigit() else -1, ref])
            if row is None:
                fail("calls", f"call '{ref}' is not in the store (give a call id or a transcript's source name)")
            else:
                rec["calls"].append(row["id"])
        if not bad:
            records.append((line, rec))
    if errors:
        raise ImportFailed(str(path), errors)

    groups: dict[str, list[tuple[int, dict]]] = {}
    for line, rec in records:
        groups.setdefault(rec["id"], []).append((line, rec))
    created = updated = stages_added = linked = 0
    with store.transaction() as db:
        for deal_id, items in groups.items():
            items.sort(key=lambda x: (x[1]["stage_date"] or x[1]["close_date"] or x[1]["created"] or "", x[0]))
            first_line, first = items[0]
            last_line, last = items[-1]
            try:
                exists = store.one("select id from deals where id = ?", [deal_id]) is not None
                n_stages = store.one("select count(*) as n from deal_stages where deal_id = ?", [deal_id])["n"]
                created_at = next((r["created"] for _, r in items if r["created"]), None)
                amount = next((r["amount"] for _, r in reversed(items) if r["amount"] is not None), None)
                segment = next((r["segment"] for _, r in reversed(items) if r["segment"]), None)
                name = next((r["name"] for _, r in reversed(items) if r["name"]), None)
                record_deal(store, deal_id, name=name, rep=last["rep_id"], amount=amount, segment=segment,
                            at=created_at if not exists else None)
                for line, r in items:
                    if r["stage"]:
                        closing = r["outcome"] != "open" and r is last
                        at = r["stage_date"] or (r["close_date"] if closing else None) or (created_at if not exists and r is first else None)
                        seen = store.one(
                            "select 1 as x from deal_stages where deal_id = ? and stage = ?" + (" and substr(at, 1, 10) = ?" if at else ""),
                            [deal_id, r["stage"]] + ([at[:10]] if at else []),
                        )
                        if seen is None:  # the same history imported again adds nothing
                            _append_stage(store, deal_id, r["stage"], at)
                outcome = last["outcome"]
                cur = store.one("select outcome from deals where id = ?", [deal_id])["outcome"]
                if outcome != cur:
                    record_deal(store, deal_id, outcome=outcome, at=last["close_date"] or last["stage_date"] if outcome != "open" else None)
                elif outcome != "open" and last["close_date"]:
                    db.execute("update deals set closed_at = ? where id = ?", [parse_when(last["close_date"], "close_date"), deal_id])
                for _, r in items:
                    for cid in r["calls"]:
                        db.execute("update calls set deal_id = ? where id = ?", [deal_id, cid])
                        linked += 1
                stages_added += store.one("select count(*) as n from deal_stages where deal_id = ?", [deal_id])["n"] - n_stages
                created += not exists
                updated += exists
            except StoreError as exc:
                errors.append(RowError(first_line, None, f"deal '{deal_id}': {exc}"))
        if errors:
            raise ImportFailed(str(path), errors)
        summary = {"kind": "deals", "file": str(path), "rows": len(records), "deals": len(groups), "created": created,
                   "updated": updated, "stages_added": stages_added, "calls_linked": linked,
                   "ignored_columns": [h for i, h in enumerate(header) if i not in idx.values() and h]}
        store.event("import.deals", subject=path.name, data={k: v for k, v in summary.items() if k != "ignored_columns"})
    return summary


def _append_stage(store: Store, deal_id: str, stage: str, at: str | None) -> None:
    """Append a stage to the history even when it equals the current stage (record_deal would skip it)."""
    cur = store.one("select stage from deals where id = ?", [deal_id])
    if cur and cur["stage"] == stage:
        store.db.execute("insert into deal_stages (deal_id, stage, at) values (?, ?, ?)", [deal_id, stage, parse_when(at) or now_iso()])
    else:
        record_deal(store, deal_id, stage=stage, at=at)
