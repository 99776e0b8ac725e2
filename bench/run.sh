#!/usr/bin/env bash
# iocsink side by side with its peers, on this machine, in one go. See bench/README.md.
#
#   bench/run.sh [--size N] [--duration S] [--no-hickory] [--only "iocsink unbound ..."] [--append]
#
# Every server listens on 127.0.0.1 only and runs pinned to CPU 0; dnsperf runs on CPU 1.
# Load runs are bounded by --duration and stop by themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SIZE=1000000
DURATION=10
HICKORY=1
APPEND=0
ONLY="floor iocsink unbound dnsmasq hickory"
while [ $# -gt 0 ]; do
  case "$1" in
    --size) SIZE=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --no-hickory) HICKORY=0; shift ;;
    --only) ONLY=$2; shift 2 ;;
    --append) APPEND=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[ "$HICKORY" = 1 ] || ONLY=${ONLY//hickory/}

OUT=$ROOT/bench/out
WORK=$OUT/work
mkdir -p "$WORK"
RESULTS=$OUT/results.jsonl
[ "$APPEND" = 1 ] || : > "$RESULTS"
SERVER_CPU=0
CLIENT_CPU=1
[ "$(nproc)" -ge 2 ] || CLIENT_CPU=0

log() { printf '\n== %s\n' "$*" >&2; }

# --- tools -------------------------------------------------------------------------------
need=()
for t in dnsperf:dnsperf nsd:nsd unbound:unbound dnsmasq:dnsmasq-base dig:dnsutils taskset:util-linux; do
  command -v "${t%%:*}" >/dev/null || need+=("${t##*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
log "building iocsink and the floor responder"
cargo build --release --locked --bin iocsink --example floor >&2
IOCSINK=$ROOT/target/release/iocsink
FLOOR=$ROOT/target/release/examples/floor
HICKORY_BIN=${HICKORY_BIN:-$(command -v hickory-dns || true)}
if [[ " $ONLY " == *" hickory "* ]] && [ -z "$HICKORY_BIN" ]; then
  log "installing hickory-dns 0.26.3 with its blocklist (several minutes, once)"
  CARGO_TARGET_DIR=$OUT/hickory-target cargo install --root "$OUT/tools" hickory-dns --version 0.26.3 \
    --no-default-features --features blocklist,resolver >&2
  HICKORY_BIN=$OUT/tools/bin/hickory-dns
fi

# --- data --------------------------------------------------------------------------------
log "generating a $SIZE-domain feed and query files"
python3 bench/gen.py feed "$SIZE" "$WORK/feed.txt"
python3 bench/gen.py zone 1000 "$WORK/example.com.zone"
python3 bench/gen.py queries "$WORK/feed.txt" 200000 "$WORK/q-blocked.txt" --mix blocked
python3 bench/gen.py queries "$WORK/feed.txt" 200000 "$WORK/q-allowed.txt" --mix allowed
python3 bench/gen.py queries "$WORK/feed.txt" 200000 "$WORK/q-mix.txt" --mix mix
SAMPLE_BLOCKED=$(sed -n '5p' "$WORK/feed.txt")

# --- the upstream: nsd, authoritative for example.com ---------------------------------------
UP_PORT=15300
cat > "$WORK/nsd.conf" <<NSD
server:
  ip-address: 127.0.0.1@$UP_PORT
  port: $UP_PORT
  zonesdir: "$WORK"
  database: ""
  pidfile: "$WORK/nsd.pid"
  xfrdfile: "$WORK/xfrd.state"
  zonelistfile: "$WORK/zone.list"
  username: ""
  logfile: "$WORK/nsd.log"
  server-count: 1
  rrl-ratelimit: 0
  verbosity: 0
zone:
  name: example.com
  zonefile: example.com.zone
NSD
nsd -c "$WORK/nsd.conf" -d & NSD_PID=$!
cleanup() { kill "$NSD_PID" 2>/dev/null || true; [ -n "${SERVER_PID:-}" ] && kill "$SERVER_PID" 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 50); do dig +short @127.0.0.1 -p $UP_PORT allowed-1.example.com A >/dev/null 2>&1 && break; sleep 0.1; done

# --- servers -----------------------------------------------------------------------------
port_of() { case $1 in floor) echo 15310;; iocsink) echo 15311;; unbound) echo 15312;; dnsmasq) echo 15313;; hickory) echo 15314;; esac; }

prepare() { # name -> writes config files
  local name=$1 port; port=$(port_of "$1")
  case $name in
    iocsink)
      cat > "$WORK/iocsink.toml" <<TOML
[server]
listen = ["127.0.0.1:$port"]
udp_threads = 1
[upstream]
servers = ["127.0.0.1:$UP_PORT"]
[[feed]]
name = "bench"
path = "$WORK/feed.txt"
format = "domains"
[log]
blocks = "$WORK/iocsink-blocks.jsonl"
[reload]
watch = false
[limits]
client_qps = 0   # one client sends everything here
TOML
      ;;
    unbound)
      sed 's/.*/local-zone: "&" always_nxdomain/' "$WORK/feed.txt" > "$WORK/unbound-zones.conf"
      cat > "$WORK/unbound.conf" <<UNB
server:
  interface: 127.0.0.1@$port
  port: $port
  num-threads: 1
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "$WORK"
  pidfile: ""
  use-syslog: no
  logfile: ""
  verbosity: 0
  access-control: 127.0.0.0/8 allow
  do-not-query-localhost: no
  msg-cache-size: 64m
  rrset-cache-size: 128m
  include: "$WORK/unbound-zones.conf"
forward-zone:
  name: "."
  forward-addr: 127.0.0.1@$UP_PORT
UNB
      ;;
    dnsmasq)
      sed 's|.*|address=/&/|' "$WORK/feed.txt" > "$WORK/dnsmasq-blocks.conf"
      ;;
    hickory)
      mkdir -p "$WORK/hd"
      # hickory's blocklist matches exact names; wildcards cover the names below.
      sed 's/.*/&\n*.&/' "$WORK/feed.txt" > "$WORK/hd/blocklist.txt"
      cat > "$WORK/hickory.toml" <<HD
listen_addrs_ipv4 = ["127.0.0.1"]
listen_port = $port
directory = "$WORK/hd"
drop_privileges = false
[[zones]]
zone = "."
zone_type = "External"
[[zones.stores]]
type = "blocklist"
wildcard_match = true
min_wildcard_depth = 2
sinkhole_ipv4 = "0.0.0.0"
sinkhole_ipv6 = "::"
ttl = 60
lists = ["blocklist.txt"]
log_clients = false
[[zones.stores]]
type = "forward"
[[zones.stores.name_servers]]
ip = "127.0.0.1"
trust_negative_responses = true
connections = [ { protocol = { type = "udp" }, port = $UP_PORT }, { protocol = { type = "tcp" }, port = $UP_PORT } ]
[zones.stores.options]
cache_size = 65536
HD
      ;;
  esac
}

start() { # name -> sets SERVER_PID
  local name=$1 port; port=$(port_of "$1")
  case $name in
    floor) taskset -c $SERVER_CPU "$FLOOR" "127.0.0.1:$port" 2>/dev/null & ;;
    iocsink) IOCSINK_LOG=warn taskset -c $SERVER_CPU "$IOCSINK" serve --config "$WORK/iocsink.toml" 2>"$WORK/iocsink.err" & ;;
    unbound) taskset -c $SERVER_CPU unbound -d -c "$WORK/unbound.conf" 2>"$WORK/unbound.err" & ;;
    dnsmasq) taskset -c $SERVER_CPU dnsmasq --keep-in-foreground --no-resolv --no-hosts --port=$port \
               --listen-address=127.0.0.1 --bind-interfaces --server=127.0.0.1#$UP_PORT --cache-size=10000 \
               --conf-file="$WORK/dnsmasq-blocks.conf" --user=root --pid-file= 2>"$WORK/dnsmasq.err" & ;;
    hickory) taskset -c $SERVER_CPU "$HICKORY_BIN" -c "$WORK/hickory.toml" -q --workers 1 2>"$WORK/hickory.err" & ;;
  esac
  SERVER_PID=$!
}

ready() { # name -> seconds until it answers a blocked name (floor: any answer)
  local name=$1 port t0; port=$(port_of "$1"); t0=$(date +%s.%N)
  for _ in $(seq 600); do
    if [ "$name" = floor ]; then
      dig +time=1 +tries=1 @127.0.0.1 -p "$port" example.com >/dev/null 2>&1 && break
    else
      st=$(dig +time=1 +tries=1 @127.0.0.1 -p "$port" "$SAMPLE_BLOCKED" A 2>/dev/null | grep -o 'status: [A-Z]*' || true)
      a=$(dig +short +time=1 +tries=1 @127.0.0.1 -p "$port" "$SAMPLE_BLOCKED" A 2>/dev/null || true)
      { [ "$st" = "status: NXDOMAIN" ] || [ "$a" = "0.0.0.0" ]; } && break
    fi
    sleep 0.05
  done
  printf '%.3f' "$(echo "$(date +%s.%N) - $t0" | bc)"
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }

perf_run() { # name file -> one JSON object of figures
  local name=$1 file=$2 port t0 t1 c0 c1; port=$(port_of "$name")
  c0=$(cpu_ticks "$SERVER_PID"); t0=$(date +%s.%N)
  taskset -c $CLIENT_CPU dnsperf -s 127.0.0.1 -p "$port" -d "$file" -l "$DURATION" -c 1 -T 1 -q 100 -t 2 >"$WORK/perf.out" 2>&1
  t1=$(date +%s.%N); c1=$(cpu_ticks "$SERVER_PID")
  python3 bench/parse.py perf "$WORK/perf.out" "$c0" "$c1" "$(getconf CLK_TCK)" "$t0" "$t1"
}

latency_run() { # name file qps -> p99 and mean at a fixed offered load
  local name=$1 file=$2 qps=$3 port; port=$(port_of "$name")
  taskset -c $CLIENT_CPU dnsperf -s 127.0.0.1 -p "$port" -d "$file" -l 3 -c 1 -T 1 -Q "$qps" -v >"$WORK/latency.out" 2>&1
  python3 bench/parse.py latency "$WORK/latency.out"
}

check_answers() { # name -> "ok" or what was wrong
  local name=$1 port bad=""; port=$(port_of "$1")
  [ "$name" = floor ] && { echo n/a; return; }
  for n in $(sed -n '10p;2000p;30000p' "$WORK/feed.txt"); do
    st=$(dig +time=2 +tries=1 @127.0.0.1 -p "$port" "www.$n" A | grep -o 'status: [A-Z]*' || true)
    a=$(dig +short +time=2 +tries=1 @127.0.0.1 -p "$port" "www.$n" A || true)
    { [ "$st" = "status: NXDOMAIN" ] || [ "$a" = "0.0.0.0" ]; } || bad="$bad www.$n:$st"
  done
  a=$(dig +short +time=2 +tries=1 @127.0.0.1 -p "$port" allowed-7.example.com A || true)
  [ "$a" = "192.0.2.8" ] || bad="$bad allowed-7:$a"
  echo "${bad:-ok}"
}

for name in $ONLY; do
  log "$name"
  prepare "$name"
  start "$name"
  ready_s=$(ready "$name")
  # Warm the cache so "allowed" measures cached answers.
  taskset -c $CLIENT_CPU dnsperf -s 127.0.0.1 -p "$(port_of "$name")" -d "$WORK/q-allowed.txt" -l 2 -c 1 -T 1 -q 100 >/dev/null 2>&1 || true
  answers=$(check_answers "$name")
  for set in blocked allowed mix; do
    figures=$(perf_run "$name" "$WORK/q-$set.txt")
    qps=$(python3 -c "import json,sys; print(max(1000, int(json.loads(sys.argv[1])['qps'] / 2)))" "$figures")
    lat=$(latency_run "$name" "$WORK/q-$set.txt" "$qps")
    python3 - "$name" "$set" "$figures" "$lat" >>"$RESULTS" <<'PY'
import json, sys
name, qset, figures, lat = sys.argv[1:]
row = {"server": name, "set": qset, **json.loads(figures), **{"half_" + k: v for k, v in json.loads(lat).items()}}
print(json.dumps(row))
PY
    tail -1 "$RESULTS" >&2
  done
  rss=$(rss_kb "$SERVER_PID")
  peak_reload=""
  if [ "$name" = iocsink ]; then
    # A reload under load: SIGHUP in the middle of a run; no query may be lost.
    (sleep 2; kill -HUP "$SERVER_PID") &
    reload_run=$(perf_run "$name" "$WORK/q-mix.txt")
    peak_reload=$(hwm_kb "$SERVER_PID")
    echo "{\"server\": \"$name\", \"set\": \"reload\", \"reload_run\": $reload_run, \"peak_rss_kb\": $peak_reload}" >>"$RESULTS"
  fi
  echo "{\"server\": \"$name\", \"set\": \"process\", \"ready_s\": $ready_s, \"rss_kb\": $rss, \"peak_rss_kb\": $(hwm_kb "$SERVER_PID"), \"answers\": \"$answers\"}" >>"$RESULTS"
  tail -1 "$RESULTS" >&2
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
done

python3 bench/parse.py report "$RESULTS" "$SIZE" "$DURATION" > bench/RESULTS.md
cat bench/RESULTS.md
