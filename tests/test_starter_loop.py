"""The starter playbook's remediation content: a scenario per discovery line, paths from lines to
scenarios, certifications gating dial, demo and renewal_call; and a fresh init validates."""
from __future__ import annotations

import subprocess
import sys

from loopkit import DISCOVERY_LINES
from playbook.loader import load_playbook
from server.cli import main


def test_fresh_init_validates(tmp_path, capsys):
    dest = tmp_path / "fresh"
    assert main(["init", str(dest)]) == 0
    assert main(["validate", str(dest)]) == 0
    out = capsys.readouterr().out
    assert "valid" in out


def test_fresh_init_validates_through_the_console_script(tmp_path):
    dest = tmp_path / "p"
    exe = [sys.executable, "-c", "import sys; from server.cli import main; sys.exit(main())"]
    assert subprocess.run(exe + ["init", str(dest)], capture_output=True).returncode == 0
    r = subprocess.run(exe + ["validate", str(dest)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_discovery_line_has_a_scenario_a_path_and_a_certification(playbook_dir):
    pb = load_playbook(playbook_dir)
    assert pb.ok, [str(p) for p in pb.problems]
    scenarios = [a.model for a in pb.all("scenarios")]
    paths = [a.model for a in pb.all("paths")]
    certs = [a.model for a in pb.all("certifications")]
    for line in DISCOVERY_LINES:
        assert any(line in s.targets for s in scenarios), f"no scenario targets {line}"
        assert any(line in p.lines for p in paths), f"no learning path covers {line}"
        assert any(line in c.lines for c in certs), f"no certification covers {line}"
    gated = {a for c in certs for a in c.gates}
    assert {"dial", "demo", "renewal_call"} <= gated
    for s in scenarios:
        for t in s.targets:
            assert any(f.line == t for f in s.facts), f"{s.id}: no hidden fact for its target {t}"
        assert s.persona.name and s.opening and s.passing and s.body.strip()
        assert s.generated_by is None  # written by people: never rewritten by the generator
        if "pricing_deflection_handled" in s.targets:
            assert s.deflection
    for p in paths:
        assert all(pb.get("scenarios", st.scenario) for st in p.steps)
    for c in certs:
        assert 0 < c.pass_mark <= 1 and c.attempts >= 1 and 0 < c.min_kappa <= 1
        for s in c.scenarios:
            assert set(pb.scenario(s).targets) & set(c.lines), f"{c.id}: scenario {s} targets none of its lines"


def test_other_call_types_have_gating_certifications(playbook_dir):
    pb = load_playbook(playbook_dir)
    by_card = {}
    for a in pb.all("certifications"):
        by_card.setdefault(a.model.scorecard, set()).update(a.model.gates)
    assert "renewal_call" in by_card.get("renewal", set())
    assert "dial" in by_card.get("outbound", set())
    assert "demo" in by_card.get("demo", set())
    for a in pb.all("certifications"):
        for line in a.model.lines:
            assert any(line in s.targets for s in (pb.scenario(x) for x in a.model.scenarios)), f"{a.id}: {line} not practised"
