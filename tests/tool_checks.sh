# Checks shared by the command-line tool tests (test_tools.sh, test_tools_mpi.sh): source it, run
# the checks, end with `report`. Each command's stdout and stderr are left in out.log and err.log.
failures=0
passes=0
pass() { echo "ok: $1"; passes=$((passes + 1)); }
fail() { echo "FAILED: $1"; failures=$((failures + 1)); }
expect() {  # expect DESCRIPTION COMMAND...: the command succeeds
  local what=$1; shift
  if "$@" > out.log 2> err.log; then pass "$what"; else fail "$what (exit $?)"; cat out.log err.log; fi
}
expect_error() {  # expect_error DESCRIPTION CODE PATTERN COMMAND...: exit CODE, one line on stderr matching PATTERN
  local what=$1 code=$2 pattern=$3; shift 3
  "$@" > out.log 2> err.log
  local rc=$?
  if [[ $rc -eq $code && $(wc -l < err.log) -eq 1 ]] && grep -q -- "$pattern" err.log; then pass "$what"
  else fail "$what (exit $rc, wanted $code; stderr: $(cat err.log))"; fi
}
report() {  # the summary line; fails when a check failed
  echo "$passes passed, $failures failed"
  [[ $failures -eq 0 ]]
}
