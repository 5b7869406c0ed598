"""Every artifact version that was ever live, content-addressed (`artifact_versions`).

A version is the content hash of the file's bytes (`playbook.loader.content_version`), so the same
text is stored once however often it goes live. Verdicts (`calls.scorecard_version`,
`verdicts.scorecard_version`), assignments (`assignments.artifact_versions`) and certifications
(`certifications.certification_version`) name versions; `get_version` returns the exact text they
were made under.

The *live pointer* (which version of each artifact the loop currently serves, as last recorded)
lives in `meta` under `playbook.live` as JSON {"kind/id": version}; `playbook.invalid` keeps
{file: content hash} of files reported broken, so a broken file is reported once per content.
"""
from __future__ import annotations

import json
from typing import Any, Iterable

from .db import Store, StoreError, now_iso

LIVE_KEY = "playbook.live"
INVALID_KEY = "playbook.invalid"
KIND_ALIASES = {
    "scorecard": "scorecards",
    "scenario": "scenarios",
    "path": "paths",
    "learning-path": "paths",
    "certification": "certifications",
    "cert": "certifications",
    "policy": "policy",
}
KNOWN_KINDS = ("scorecards", "scenarios", "paths", "certifications", "policy")


def norm_kind(kind: str) -> str:
    """'scorecard' -> 'scorecards' etc.; raises StoreError naming the kinds."""
    k = (kind or "").strip().lower()
    k = KIND_ALIASES.get(k, k)
    if k not in KNOWN_KINDS:
        raise StoreError(f"unknown artifact kind '{kind}': use one of {', '.join(KNOWN_KINDS)}")
    return k


def record_version(store: Store, kind: str, artifact_id: str, version: str, path: str, text: str,
                   first_seen: str | None = None) -> bool:
    """Keep one version's text; True when it was not stored before."""
    return bool(record_many(store, [(kind, artifact_id, version, path, text)], first_seen))


def record_many(store: Store, rows: Iterable[tuple[str, str, str, str, str]], first_seen: str | None = None) -> list[tuple[str, str, str]]:
    """Record (kind, id, version, path, text) rows in one transaction; returns the new (kind, id, version)."""
    new = []
    at = first_seen or now_iso()
    with store.transaction() as db:
        for kind, aid, version, path, text in rows:
            cur = db.execute(
                "insert or ignore into artifact_versions (kind, artifact_id, version, path, text, first_seen) values (?, ?, ?, ?, ?, ?)",
                (kind, aid, version, path, text, at),
            )
            if cur.rowcount == 1:
                new.append((kind, aid, version))
    return new


def list_versions(store: Store, kind: str, artifact_id: str) -> list[dict]:
    """The versions of one artifact, oldest first: {version, path, first_seen, bytes, live}."""
    kind = norm_kind(kind)
    live = live_pointer(store).get(f"{kind}/{artifact_id}")
    rows = store.query(
        "select version, path, first_seen, length(text) as bytes from artifact_versions"
        " where kind = ? and artifact_id = ? order by first_seen, rowid",
        (kind, artifact_id),
    )
    for r in rows:
        r["live"] = r["version"] == live
    return rows


def resolve_version(store: Store, kind: str, artifact_id: str, version: str) -> str:
    """A full version id from a full id or a unique prefix (at least 4 characters)."""
    kind = norm_kind(kind)
    v = (version or "").strip()
    row = store.one("select version from artifact_versions where kind = ? and artifact_id = ? and version = ?", (kind, artifact_id, v))
    if row:
        return row["version"]
    known = [r["version"] for r in store.query(
        "select version from artifact_versions where kind = ? and artifact_id = ? order by first_seen, rowid", (kind, artifact_id))]
    if not known:
        raise StoreError(
            f"no stored versions of {kind[:-1] if kind != 'policy' else kind} '{artifact_id}': versions are recorded when the "
            "server or `coachloop run` sees the playbook (check the id with `coachloop validate`)"
        )
    matches = [k for k in known if v and k.startswith(v)]
    if len(matches) == 1 and len(v) >= 4:
        return matches[0]
    if matches and len(v) < 4:
        why = "is too short (give at least 4 characters of the version)"
    else:
        why = "is ambiguous" if matches else "is not a stored version"
    raise StoreError(f"version '{version}' of {kind}/{artifact_id} {why}; known versions (oldest first): {', '.join(known)}")


def get_version(store: Store, kind: str, artifact_id: str, version: str) -> str:
    """The exact text of one stored version (full id or unique prefix); StoreError when unknown."""
    kind = norm_kind(kind)
    full = resolve_version(store, kind, artifact_id, version)
    row = store.one("select text from artifact_versions where kind = ? and artifact_id = ? and version = ?", (kind, artifact_id, full))
    return row["text"]


def get_version_row(store: Store, kind: str, artifact_id: str, version: str) -> dict:
    kind = norm_kind(kind)
    full = resolve_version(store, kind, artifact_id, version)
    return store.one("select * from artifact_versions where kind = ? and artifact_id = ? and version = ?", (kind, artifact_id, full))


# --------------------------------------------------------------------------- meta pointers


def _meta_json(store: Store, key: str) -> dict[str, Any]:
    row = store.one("select value from meta where key = ?", (key,))
    if not row:
        return {}
    try:
        val = json.loads(row["value"] or "{}")
    except ValueError:
        return {}
    return val if isinstance(val, dict) else {}


def _set_meta_json(store: Store, key: str, value: dict) -> None:
    with store.transaction() as db:
        db.execute("insert into meta (key, value) values (?, ?) on conflict(key) do update set value = excluded.value",
                   (key, json.dumps(value, sort_keys=True)))


def live_pointer(store: Store) -> dict[str, str]:
    """{"kind/id": version} as last recorded; empty before the first recording."""
    return {k: str(v) for k, v in _meta_json(store, LIVE_KEY).items()}


def has_live_pointer(store: Store) -> bool:
    return store.one("select 1 as x from meta where key = ?", (LIVE_KEY,)) is not None


def set_live_pointer(store: Store, pointer: dict[str, str]) -> None:
    _set_meta_json(store, LIVE_KEY, pointer)


def invalid_files(store: Store) -> dict[str, str]:
    """{file: content hash} of files reported invalid and not yet recovered."""
    return {k: str(v) for k, v in _meta_json(store, INVALID_KEY).items()}


def set_invalid_files(store: Store, files: dict[str, str]) -> None:
    _set_meta_json(store, INVALID_KEY, files)
