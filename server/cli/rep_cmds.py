"""`coachloop rep add|list|show` and `coachloop deal record|show`: the roster and the deals."""
from __future__ import annotations

import argparse

from store.deals import get_deal, record_deal
from store.reps import get_rep, list_reps, upsert_rep

from .common import add_db, add_json, add_playbook, answer, command, emit_json, open_coach


def _common(p: argparse.ArgumentParser) -> None:
    add_playbook(p)
    add_db(p)
    add_json(p)


def register(sub: argparse._SubParsersAction) -> None:
    existing = set(getattr(sub, "choices", {}) or {})
    if "rep" not in existing:
        _register_rep(sub)
    if "deal" not in existing:
        _register_deal(sub)


def _register_rep(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rep", help="the team roster: add, list and show reps", description="Manage the team roster.")
    rs = p.add_subparsers(dest="rep_command", metavar="ACTION", required=True)

    a = rs.add_parser("add", help="add a rep, or update the fields given",
                      description="Add a rep to the roster, or update the fields given (the others keep their values). "
                      "The id is a slug of the name unless --id is given.")
    a.add_argument("name", metavar="NAME", help="the rep's full name, as it appears in transcripts")
    a.add_argument("--id", help="stable id (default: slug of the name, e.g. priya-raman)")
    a.add_argument("--team", help="team name")
    a.add_argument("--segment", help="segment the rep sells to (smb, mid-market, enterprise, ...)")
    a.add_argument("--hire-date", dest="hire_date", metavar="YYYY-MM-DD", help="hire date (for ramp time)")
    a.add_argument("--quota", type=float, help="quota amount")
    a.add_argument("--manager", help="manager's name")
    a.add_argument("--email", help="email address")
    a.add_argument("--alias", action="append", default=[], metavar="NAME",
                   help="another spelling seen in transcripts (repeatable), e.g. a Zoom display name")
    _common(a)
    a.set_defaults(func=cmd_rep_add)

    ls = rs.add_parser("list", help="list the reps", description="List the active reps.")
    ls.add_argument("--team", help="only this team")
    ls.add_argument("--segment", help="only this segment")
    _common(ls)
    ls.set_defaults(func=cmd_rep_list)

    sh = rs.add_parser("show", help="show one rep", description="Show one rep by id, name or alias.")
    sh.add_argument("rep", metavar="REP", help="id, name or alias")
    _common(sh)
    sh.set_defaults(func=cmd_rep_show)


def _register_deal(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("deal", help="deals: record stage changes and outcomes", description="Record deals and their progress.")
    ds = p.add_subparsers(dest="deal_command", metavar="ACTION", required=True)

    r = ds.add_parser("record", help="create a deal or record a change (stage, outcome, amount)",
                      description="Create a deal, or record a change: a new stage is added to its stage history, "
                      "won/lost closes it.")
    r.add_argument("id", metavar="ID", help="deal id (e.g. the CRM's opportunity id)")
    r.add_argument("--name", help="deal name")
    r.add_argument("--rep", metavar="NAME", help="owner rep (id, name or alias; must be on the roster)")
    r.add_argument("--stage", help="current stage")
    r.add_argument("--outcome", choices=["open", "won", "lost"], help="outcome")
    r.add_argument("--amount", type=float, help="deal amount")
    r.add_argument("--segment", help="customer segment")
    r.add_argument("--at", metavar="ISO", help="when this happened (ISO 8601; default now)")
    _common(r)
    r.set_defaults(func=cmd_deal_record)

    sh = ds.add_parser("show", help="show a deal and its stage history", description="Show a deal and its stage history.")
    sh.add_argument("id", metavar="ID")
    _common(sh)
    sh.set_defaults(func=cmd_deal_show)


def _print_rep(r: dict) -> None:
    extras = [f"{k}={r[k]}" for k in ("team", "segment", "manager", "hire_date", "quota", "email") if r.get(k) not in (None, "")]
    aliases = f"  aliases: {', '.join(r['aliases'])}" if r.get("aliases") else ""
    print(f"{r['id']:<24} {r['name']:<24} {' '.join(extras)}{aliases}")


@command
def cmd_rep_add(args: argparse.Namespace) -> int:
    with open_coach(args) as coach:
        rep = upsert_rep(coach.store, args.name, id=args.id, team=args.team, manager=args.manager, segment=args.segment,
                         hire_date=args.hire_date, quota=args.quota, email=args.email, aliases=args.alias)
        return answer(args, rep, lambda r: print(f"rep {r['id']}: {r['name']}"))


@command
def cmd_rep_list(args: argparse.Namespace) -> int:
    with open_coach(args) as coach:
        reps = list_reps(coach.store, team=args.team, segment=args.segment)
        if args.json:
            emit_json(reps)
            return 0
        if not reps:
            print("no reps yet: add one with `coachloop rep add \"Full Name\" --team T --segment S`")
        for r in reps:
            _print_rep(r)
        return 0


@command
def cmd_rep_show(args: argparse.Namespace) -> int:
    with open_coach(args) as coach:
        return answer(args, get_rep(coach.store, args.rep), _print_rep)


def _print_deal(d: dict) -> None:
    amount = f"  amount {d['amount']:,.0f}" if d.get("amount") is not None else ""
    closed = f" (closed {d['closed_at']})" if d.get("closed_at") else ""
    print(f"deal {d['id']}  {d.get('name') or ''}  rep {d.get('rep_id') or '-'}  stage {d.get('stage') or '-'}  "
          f"{d['outcome']}{closed}{amount}")
    for s in d.get("stages", []):
        print(f"  {s['at']}  {s['stage']}")


@command
def cmd_deal_record(args: argparse.Namespace) -> int:
    with open_coach(args) as coach:
        deal = record_deal(coach.store, args.id, name=args.name, rep=args.rep, amount=args.amount, stage=args.stage,
                           outcome=args.outcome, at=args.at, segment=args.segment)
        return answer(args, deal, _print_deal)


@command
def cmd_deal_show(args: argparse.Namespace) -> int:
    with open_coach(args) as coach:
        return answer(args, get_deal(coach.store, args.id), _print_deal)
