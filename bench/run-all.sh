#!/usr/bin/env bash
# Reproduce every number in BENCHMARKS.md. Results go to bench/results/ (JSON + text + SVG charts; an HTML page each,
# not committed: `chatd bench render NAME.json --html NAME.html` draws it again from the JSON).
#
#   bash bench/run-all.sh            # all of them, ~30 minutes
#   bash bench/run-all.sh steady     # any of: steady steady2 ramp ramp2 burst connect large dm
#                                    #   dm-ramp ramp-ceiling connect-20k rest
#                                    #   cluster-steady cluster-ramp cluster-burst (need Redis, RabbitMQ,
#                                    #   PostgreSQL and nginx on this machine)
#
# The load generator shares the machine with the server, and anything else running skews both, so before each run
# (and, through --calm, before each target of a comparison) this waits up to 10 minutes for the 1-minute load
# average to drop below QUIET_LOAD.
set -euo pipefail
cd "$(dirname "$0")/.."
CHATD=${CHATD:-.venv/bin/chatd}
OUT=bench/results
QUIET_LOAD=${QUIET_LOAD:-0.6}
QUIET_WAIT=${QUIET_WAIT:-600}
mkdir -p "$OUT"

wait_quiet() {
  local waited=0
  while awk -v lim="$QUIET_LOAD" '{exit !($1 > lim)}' /proc/loadavg && [ "$waited" -lt "$QUIET_WAIT" ]; do
    sleep 10; waited=$((waited + 10))
  done
  echo "== $(date -u +%H:%M:%S) load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
}

run() {  # run NAME ARGS...: one bench command, its table to $OUT/NAME.txt
  local name=$1; shift
  wait_quiet
  echo "== $CHATD bench $*" | tee "$OUT/$name.txt"
  "$CHATD" bench "$@" -q --calm "$QUIET_LOAD" --json "$OUT/$name.json" --html "$OUT/$name.html" --svg-dir "$OUT/$name" \
    | tee -a "$OUT/$name.txt"
}

want() { [ $# -eq 0 ] || [[ " $* " == *" $WHICH "* ]]; }

for WHICH in steady steady2 ramp ramp2 burst connect large dm dm-ramp ramp-ceiling connect-20k rest \
             cluster-steady cluster-ramp cluster-burst; do
  if ! want "$@"; then continue; fi
  case $WHICH in
    steady)  run steady compare -s bench/scenarios/steady.toml -t spawn -t naive ;;
    steady2) run steady2 compare -s bench/scenarios/steady.toml -t spawn -t naive --procs 2 ;;
    ramp)    run ramp compare -s bench/scenarios/ramp.toml -t spawn -t naive ;;
    ramp2)   run ramp2 compare -s bench/scenarios/ramp.toml -t spawn -t naive --procs 2 --repeat 3 ;;
    burst)   run burst compare -s bench/scenarios/burst.toml -t spawn -t naive --procs 2 ;;
    connect) run connect compare -s bench/scenarios/connect.toml -t spawn -t naive ;;
    large)   run large compare -s bench/scenarios/large.toml -t spawn -t naive ;;
    dm)      run dm compare -s bench/scenarios/dm.toml -t spawn -t naive ;;
    dm-ramp) run dm-ramp compare -s bench/scenarios/dm-ramp.toml -t spawn -t naive -t ceiling --procs 2 ;;
    ramp-ceiling) run ramp-ceiling compare -s bench/scenarios/ramp.toml -t spawn -t naive -t ceiling --procs 2 ;;
    # 30,000 where the hard open-files limit allows it; 19,500 fits under a hard limit of 20,000
    connect-20k) run connect-20k compare -s bench/scenarios/connect-30k.toml --connections "${CONNECTIONS:-19500}" \
                   --procs 2 -t spawn -t naive -t ceiling ;;
    rest)    wait_quiet
             "$CHATD" bench rest -c 80 --json "$OUT/rest.json" | tee "$OUT/rest.txt" ;;
    cluster-steady) run cluster-steady compare -s bench/scenarios/steady.toml --rate 2400 \
                      -t spawn -t cluster:redis -t cluster:rabbitmq ;;
    cluster-ramp)   run cluster-ramp compare -s bench/scenarios/cluster-ramp.toml \
                      -t spawn -t cluster:redis -t cluster:rabbitmq ;;
    cluster-burst)  run cluster-burst compare -s bench/scenarios/burst.toml \
                      -t spawn -t cluster:redis -t cluster:rabbitmq ;;
  esac
done
