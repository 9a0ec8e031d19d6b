#!/usr/bin/env bash
# infra/services.sh: install, start, stop and inspect the local services Bot4 runs against.
#
# Why this exists: every developer machine and every CI job must get the same Kafka, PostgreSQL,
# Redis and Prometheus, on the project's own ports, bound to 127.0.0.1, from nothing and without Docker. The script
# is idempotent (a second `up` does nothing and says so), waits until each service really answers,
# and stops exactly the processes it started, found by their pid files, never by process name, so it
# can not hit another project's (or the system's) servers. All state lives under $BOT4_SERVICES_DIR
# (default <repo>/.services, git-ignored); `clean` wipes it.
#
#   infra/services.sh up|down|status|clean|fetch [kafka|postgres|redis|prometheus|all] (default: all)
#   infra/services.sh down clean                                                  (= clean all)
#   infra/services.sh tools                          (test tools: Chromium, Prometheus's promtool)
#
# Environment: BOT4_SERVICES_DIR (state), BOT4_PYTHON (a Python with confluent-kafka; default
# <repo>/.venv/bin/python), BOT4_SERVICES_TIMEOUT (seconds to wait per service, default 90),
# BOT4_PG_BIN (PostgreSQL server binaries, default /usr/lib/postgresql/15/bin).
# Ports are fixed on purpose (they are the project's contract, see infra/README.md).
# shellcheck disable=SC2016  # single-quoted `bash -c` bodies expand in the child, on purpose.
set -euo pipefail
umask 022

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
REPO_DIR="$(cd -- "$SCRIPT_DIR/.." && pwd -P)"
SERVICES_DIR="$(realpath -m -- "${BOT4_SERVICES_DIR:-$REPO_DIR/.services}")"
PYTHON="${BOT4_PYTHON:-$REPO_DIR/.venv/bin/python}"
TIMEOUT="${BOT4_SERVICES_TIMEOUT:-90}"
LOG_DIR="$SERVICES_DIR/logs"
MARKER="$SERVICES_DIR/.bot4-services"

HOST=127.0.0.1
KAFKA_VERSION=4.1.1
KAFKA_PORT=29092
KAFKA_CONTROLLER_PORT=29093
PG_PORT=25432
PG_DB=bot4
PG_USER=postgres
PG_OS_USER=postgres
PG_BIN="${BOT4_PG_BIN:-/usr/lib/postgresql/15/bin}"
REDIS_PORT=26379
PROM_PORT=29090
# Flow processes serve /metrics from 29100 upwards (BOT4_METRICS_PORT, flows/metrics.py).
FLOW_METRICS_PORTS=(29100 29101 29102 29103 29104 29105 29106 29107 29108 29109)

KAFKA_POM="$SCRIPT_DIR/kafka/pom.xml"
KAFKA_LIBS="$SCRIPT_DIR/kafka/libs"
TOPICS_FILE="$SCRIPT_DIR/topics.toml"

K_DIR="$SERVICES_DIR/kafka"
K_DATA="$K_DIR/data"
K_PROPS="$K_DIR/server.properties"
K_LOG4J="$K_DIR/log4j2.properties"
K_PID="$K_DIR/kafka.pid"
K_CLUSTER_ID="$K_DIR/cluster.id"
K_LOG="$LOG_DIR/kafka.log"

PG_STATE="$SERVICES_DIR/postgres"
PG_DATADIR_RECORD="$PG_STATE/datadir" # where the cluster lives (may be outside SERVICES_DIR)
PG_LOG="$LOG_DIR/postgres.log"

R_DIR="$SERVICES_DIR/redis"
R_DATA="$R_DIR/data"
R_PID="$R_DIR/redis.pid"
R_LOG="$LOG_DIR/redis.log"

PROM_TEMPLATE="$SCRIPT_DIR/prometheus/prometheus.yml.in"
PROM_RULES="$SCRIPT_DIR/prometheus/rules"
P_DIR="$SERVICES_DIR/prometheus"
P_DATA="$P_DIR/data"
P_TARGETS="$P_DIR/targets"
P_CONFIG="$P_DIR/prometheus.yml"
P_PID="$P_DIR/prometheus.pid"
P_LOG="$LOG_DIR/prometheus.log"

# ----------------------------------------------------------------------------------------- helpers

say() { printf '%s\n' "$*"; }
warn() { printf 'services.sh: warning: %s\n' "$*" >&2; }

# Set right after this run spawns a server and cleared once it answers: a failed `up` stops the
# half-started process it created instead of leaving it behind.
STARTED_NAME="" STARTED_PID="" STARTED_PIDFILE=""
started() { STARTED_NAME="$1" STARTED_PID="$2" STARTED_PIDFILE="$3"; }
ready() { STARTED_NAME="" STARTED_PID="" STARTED_PIDFILE=""; }
abort_started() {
  local name="$STARTED_NAME" pid="$STARTED_PID" pidfile="$STARTED_PIDFILE" i
  ready
  [[ -n "$pid" ]] && pid_running "$pid" || return 0
  printf 'services.sh: stopping the %s process this run started (pid %s)\n' "$name" "$pid" >&2
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 120; i++)); do
    pid_running "$pid" || break
    sleep 0.25
  done
  pid_running "$pid" && kill -KILL "$pid" 2>/dev/null
  [[ "$name" == postgres ]] || rm -f -- "$pidfile"
}

die() {
  printf 'services.sh: error: %s\n' "$*" >&2
  abort_started
  exit 1
}

# die with the last lines of a log, which is where the real reason is.
die_with_log() {
  local msg="$1" log="$2"
  {
    printf 'services.sh: error: %s\n' "$msg"
    if [[ -s "$log" ]]; then
      printf -- '--- last 40 lines of %s ---\n' "$log"
      tail -n 40 -- "$log"
      printf -- '--- end of %s ---\n' "$log"
    else
      printf '(log %s is empty or missing)\n' "$log"
    fi
  } >&2
  abort_started
  exit 1
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

usage() {
  cat <<EOF
usage: infra/services.sh up|down|status|clean|fetch [kafka|postgres|redis|prometheus|all]   (default: all)
       infra/services.sh down clean   (stop everything and wipe $SERVICES_DIR)
       infra/services.sh tools        (install test tools: Chromium, Prometheus with promtool)

  up      install if needed, start, wait until the service answers (Kafka: also create topics)
  down    stop what this script started (data is kept)
  status  show what runs; exit 0 if all asked services run, 3 otherwise
  clean   stop, then delete the service's data and logs
  fetch   only install/fetch binaries (Kafka jars, PostgreSQL, Redis, Prometheus packages)
EOF
}

is_root() { [[ "$(id -u)" == 0 ]]; }

# A pid counts as running if it exists and is not a zombie (containers often lack a reaper).
pid_running() {
  local pid="$1" state
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/stat" ]] || return 1
  state="$(sed -e 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
  [[ -n "$state" && "$state" != Z && "$state" != X ]]
}

# True if the process' command line contains every given string (guards against pid reuse).
pid_cmdline_has() {
  local pid="$1" cmdline s
  shift
  cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
  for s in "$@"; do
    [[ "$cmdline" == *"$s"* ]] || return 1
  done
}

read_pidfile() {
  local f="$1"
  [[ -s "$f" ]] || return 1
  head -n 1 -- "$f" | tr -d '[:space:]'
}

port_open() {
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$HOST" "$1" 2>/dev/null
}

describe_port() {
  local port="$1" who=""
  if command -v ss >/dev/null 2>&1; then
    who="$(ss -Hltnp "sport = :$port" 2>/dev/null | head -n 3 | tr -s ' ')"
  fi
  printf '%s:%s is already in use by a process this script did not start%s' "$HOST" "$port" \
    "${who:+ ($who)}"
}

require_free_port() {
  local service="$1" port="$2"
  if port_open "$port"; then
    die "$service: $(describe_port "$port"); stop it or free the port (expected it free because no pid file of ours names a running $service)"
  fi
}

# wait_for DESCRIPTION PID LOG CMD...: poll CMD until it succeeds; fail fast if PID dies.
wait_for() {
  local what="$1" pid="$2" log="$3"
  shift 3
  local deadline=$((SECONDS + TIMEOUT))
  until "$@"; do
    if [[ -n "$pid" ]] && ! pid_running "$pid"; then
      die_with_log "$what: the process (pid $pid) exited while waiting for it to answer" "$log"
    fi
    if ((SECONDS >= deadline)); then
      die_with_log "$what: no answer after ${TIMEOUT}s (BOT4_SERVICES_TIMEOUT)" "$log"
    fi
    sleep 0.25
  done
}

# stop_pid NAME PID: SIGTERM, wait until it exits (60 s), SIGKILL as a last resort.
stop_pid() {
  local name="$1" pid="$2" i
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 240; i++)); do
    pid_running "$pid" || return 0
    sleep 0.25
  done
  warn "$name: pid $pid still running 60 s after SIGTERM; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 40; i++)); do
    pid_running "$pid" || return 0
    sleep 0.25
  done
  die "$name: pid $pid did not exit even after SIGKILL"
}

ensure_state_dir() {
  mkdir -p -- "$SERVICES_DIR" "$LOG_DIR"
  [[ -e "$MARKER" ]] || printf 'Bot4 local services state (infra/services.sh); safe to delete with `infra/services.sh clean`.\n' >"$MARKER"
  [[ -e "$SERVICES_DIR/.gitignore" ]] || printf '*\n' >"$SERVICES_DIR/.gitignore"
}

check_python() {
  [[ -x "$PYTHON" ]] || die "Python not found at $PYTHON (needed for the Kafka readiness check and topics); create the venv (python3 -m venv .venv && .venv/bin/pip install -e '.[dev]') or set BOT4_PYTHON to a Python with confluent-kafka"
  "$PYTHON" -c 'import confluent_kafka' 2>/dev/null || die "$PYTHON can not import confluent_kafka; install the project (pip install -e '.[dev]') or set BOT4_PYTHON to a Python that has it"
}

apt_updated=0
apt_install() {
  is_root || die "packages $* are missing and installing them needs root (apt-get install -y $*)"
  command -v apt-get >/dev/null 2>&1 || die "packages $* are missing and apt-get is not available on this machine; install them by hand"
  if ((apt_updated == 0)); then
    say "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq 9>&- >/dev/null || die "apt-get update failed (see above)"
    apt_updated=1
  fi
  say "apt-get install -y $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" 9>&- >/dev/null ||
    die "apt-get install $* failed (see above)"
}

# Serialises concurrent runs (make -j, two terminals). Every process we spawn gets `9>&-` so no
# server keeps the lock open after this script exits.
take_lock() {
  mkdir -p -- "$SERVICES_DIR"
  exec 9>"$SERVICES_DIR/.lock"
  flock -w 300 9 || die "another infra/services.sh holds $SERVICES_DIR/.lock for more than 300 s"
}

# ------------------------------------------------------------------------------------------- kafka

kafka_pid() {
  local pid
  pid="$(read_pidfile "$K_PID")" || return 1
  pid_running "$pid" && pid_cmdline_has "$pid" kafka.Kafka "$K_PROPS" || return 1
  printf '%s\n' "$pid"
}

java_major() {
  java -version 2>&1 | awk -F'"' '/version/ { split($2, v, "."); print (v[1] == "1" ? v[2] : v[1]); exit }'
}

kafka_fetch() {
  local stamp="$KAFKA_LIBS/.bot4-stamp" want tmp t0 slf4j
  want="$(sha256sum "$KAFKA_POM" | cut -c1-64)"
  if [[ -f "$stamp" && "$(<"$stamp")" == "$want" ]]; then
    return 0
  fi
  command -v java >/dev/null 2>&1 || apt_install openjdk-17-jre-headless
  command -v mvn >/dev/null 2>&1 || apt_install maven
  ensure_state_dir
  t0="$(now)"
  say "kafka: fetching Kafka $KAFKA_VERSION jars from Maven Central into $KAFKA_LIBS (once; cached in ~/.m2)"
  tmp="$(mktemp -d "$SCRIPT_DIR/kafka/.libs.XXXXXX")"
  if ! mvn -B -q -f "$KAFKA_POM" dependency:copy-dependencies -DoutputDirectory="$tmp" \
    -DincludeScope=runtime >"$LOG_DIR/kafka-fetch.log" 2>&1 9>&-; then
    rm -rf -- "$tmp"
    die_with_log "kafka: mvn dependency:copy-dependencies failed for $KAFKA_POM" "$LOG_DIR/kafka-fetch.log"
  fi
  [[ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ]] || {
    rm -rf -- "$tmp"
    die "kafka: kafka_2.13-$KAFKA_VERSION.jar missing after the fetch (expected it in the resolved jars)"
  }
  slf4j="$(find "$tmp" -maxdepth 1 -name 'slf4j-api-*.jar' -printf '%f\n' | head -n 1)"
  if [[ "$slf4j" != slf4j-api-1.* ]]; then
    rm -rf -- "$tmp"
    die "kafka: resolved ${slf4j:-no slf4j-api jar}, expected slf4j-api 1.x; with slf4j 2.x switch $KAFKA_POM to log4j-slf4j2-impl"
  fi
  printf '%s\n' "$want" >"$tmp/.bot4-stamp"
  rm -rf -- "$KAFKA_LIBS"
  mv -- "$tmp" "$KAFKA_LIBS"
  say "kafka: fetched $(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars ($(du -sh "$KAFKA_LIBS" | cut -f1)) in $(elapsed "$t0") s"
}

kafka_write_config() {
  mkdir -p -- "$K_DIR" "$K_DATA"
  cat >"$K_PROPS" <<EOF
# Generated by infra/services.sh on every start; edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$K_DATA
num.network.threads=2
num.io.threads=2
num.partitions=1
# Topics come from infra/topics.toml only: a typo must fail, not create a 1-partition topic.
auto.create.topics.enable=false
delete.topic.enable=true
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
default.replication.factor=1
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
log.retention.hours=168
log.segment.bytes=268435456
EOF
  cat >"$K_LOG4J" <<'EOF'
# Generated by infra/services.sh. Everything goes to stdout, which the script appends to
# .services/logs/kafka.log.
name = bot4-kafka
status = warn
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = WARN
EOF
}

# The JVM command line shared by StorageTool and the broker (heap as agreed: 128 MB to 512 MB).
KAFKA_JAVA=(java -Xms128m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError
  -Djava.awt.headless=true "-Dlog4j2.configurationFile=file:$K_LOG4J" "-Dkafka.logs.dir=$LOG_DIR"
  -cp "$KAFKA_LIBS/*")
kafka_java() { "${KAFKA_JAVA[@]}" "$@"; }

kafka_format() {
  local cid meta_cid
  if [[ ! -s "$K_CLUSTER_ID" ]]; then
    cid="$(kafka_java kafka.tools.StorageTool random-uuid 2>>"$K_LOG" | tail -n 1 | tr -d '[:space:]')"
    [[ "$cid" =~ ^[A-Za-z0-9_-]{22}$ ]] || die_with_log "kafka: StorageTool random-uuid gave '$cid', expected a 22-character id" "$K_LOG"
    printf '%s\n' "$cid" >"$K_CLUSTER_ID"
  fi
  cid="$(tr -d '[:space:]' <"$K_CLUSTER_ID")"
  if [[ -f "$K_DATA/meta.properties" ]]; then
    meta_cid="$(sed -n 's/^cluster\.id=//p' "$K_DATA/meta.properties" | tr -d '[:space:]')"
    [[ "$meta_cid" == "$cid" ]] || die "kafka: $K_DATA is formatted for cluster '$meta_cid' but $K_CLUSTER_ID says '$cid'; run infra/services.sh clean kafka"
    return 0
  fi
  say "kafka: formatting $K_DATA (cluster id $cid)"
  kafka_java kafka.tools.StorageTool format -t "$cid" -c "$K_PROPS" --ignore-formatted >>"$K_LOG" 2>&1 9>&- ||
    die_with_log "kafka: StorageTool format failed" "$K_LOG"
}

# Port open is not enough: wait until a metadata request returns our broker and our cluster id.
kafka_metadata_ready() {
  local pid="$1" cid
  cid="$(tr -d '[:space:]' <"$K_CLUSTER_ID")"
  "$PYTHON" - "$HOST:$KAFKA_PORT" "$cid" "$pid" "$TIMEOUT" <<'EOF' 9>&-
import os, sys, time
from confluent_kafka.admin import AdminClient

bootstrap, cluster_id, pid, timeout = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
deadline = time.monotonic() + timeout
admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
last = "no answer yet"
while time.monotonic() < deadline:
    if not os.path.exists(f"/proc/{pid}"):
        sys.exit(f"kafka: broker process {pid} exited during the metadata check")
    try:
        md = admin.list_topics(timeout=3)
    except Exception as exc:  # KafkaException while the broker is still starting
        last = str(exc)
        time.sleep(0.25)
        continue
    if md.cluster_id != cluster_id:
        sys.exit(f"kafka: {bootstrap} answers with cluster id {md.cluster_id!r}, expected ours {cluster_id!r}")
    if 1 in md.brokers:
        sys.exit(0)
    last = f"brokers in metadata: {sorted(md.brokers)}, expected node 1"
    time.sleep(0.25)
sys.exit(f"kafka: metadata request to {bootstrap} did not succeed within {timeout:.0f}s: {last}")
EOF
}

kafka_topics() {
  local t0
  t0="$(now)"
  (cd "$REPO_DIR" && PYTHONPATH="$REPO_DIR${PYTHONPATH:+:$PYTHONPATH}" \
    "$PYTHON" -m flows.topics ensure --bootstrap "$HOST:$KAFKA_PORT" --file "$TOPICS_FILE" 9>&-) ||
    die "kafka: creating the topics of $TOPICS_FILE failed (see the message above)"
  say "kafka: topics checked in $(elapsed "$t0") s"
}

kafka_up() {
  local pid t0 major
  if pid="$(kafka_pid)"; then
    say "kafka: already running (pid $pid) on $HOST:$KAFKA_PORT; nothing to start"
    check_python
    kafka_topics
    return 0
  fi
  t0="$(now)"
  [[ -e "$K_PID" ]] && rm -f -- "$K_PID"
  require_free_port kafka "$KAFKA_PORT"
  require_free_port kafka "$KAFKA_CONTROLLER_PORT"
  check_python
  kafka_fetch
  major="$(java_major)"
  if ! [[ "$major" =~ ^[0-9]+$ ]] || ((major < 17)); then
    die "kafka: Kafka $KAFKA_VERSION needs Java 17+, found '$(java -version 2>&1 | head -n 1)'"
  fi
  kafka_write_config
  kafka_format
  if [[ -f "$K_LOG" ]] && (($(stat -c %s "$K_LOG") > 50 * 1024 * 1024)); then
    mv -f -- "$K_LOG" "$K_LOG.1"
  fi
  printf '\n===== %s infra/services.sh: starting Kafka %s =====\n' "$(date -Is)" "$KAFKA_VERSION" >>"$K_LOG"
  # setsid: own session, so a Ctrl-C in the calling terminal or make does not reach the broker.
  # The inner bash writes its own pid, then execs java, so the pid file names the broker itself.
  setsid bash -c 'printf "%s\n" "$$" >"$1"; shift; exec "$@"' bash "$K_PID" \
    "${KAFKA_JAVA[@]}" kafka.Kafka "$K_PROPS" </dev/null >>"$K_LOG" 2>&1 9>&- &
  wait_for "kafka: pid file $K_PID" "" "$K_LOG" test -s "$K_PID"
  pid="$(read_pidfile "$K_PID")"
  started kafka "$pid" "$K_PID"
  wait_for "kafka: port $HOST:$KAFKA_PORT" "$pid" "$K_LOG" port_open "$KAFKA_PORT"
  kafka_metadata_ready "$pid" || die_with_log "kafka: broker (pid $pid) is not ready" "$K_LOG"
  ready
  say "kafka: started (pid $pid) on $HOST:$KAFKA_PORT, controller $HOST:$KAFKA_CONTROLLER_PORT, ready in $(elapsed "$t0") s; log $K_LOG"
  kafka_topics
}

kafka_down() {
  local pid t0
  if ! pid="$(kafka_pid)"; then
    [[ -e "$K_PID" ]] && {
      warn "kafka: removing stale pid file $K_PID (its process is gone)"
      rm -f -- "$K_PID"
    }
    say "kafka: not running"
    return 0
  fi
  t0="$(now)"
  stop_pid kafka "$pid"
  rm -f -- "$K_PID"
  say "kafka: stopped (pid $pid) in $(elapsed "$t0") s"
}

kafka_status() {
  local pid
  if pid="$(kafka_pid)"; then
    if port_open "$KAFKA_PORT"; then
      say "kafka: running (pid $pid) on $HOST:$KAFKA_PORT, controller $HOST:$KAFKA_CONTROLLER_PORT; data $K_DATA; log $K_LOG"
    else
      say "kafka: running (pid $pid) but $HOST:$KAFKA_PORT does not answer (starting or stuck); log $K_LOG"
    fi
    return 0
  fi
  say "kafka: stopped"
  return 3
}

kafka_clean() {
  kafka_down
  rm -rf -- "$K_DIR" "$K_LOG" "$K_LOG.1" "$LOG_DIR/kafka-fetch.log"
  say "kafka: data removed ($K_DIR)"
}

# ---------------------------------------------------------------------------------------- postgres

run_as_pg() {
  if is_root; then
    (cd / && runuser -u "$PG_OS_USER" -- "$@")
  else
    (cd / && "$@")
  fi
}

pg_datadir() {
  [[ -s "$PG_DATADIR_RECORD" ]] || return 1
  head -n 1 -- "$PG_DATADIR_RECORD"
}

# Decide once where the cluster lives: under SERVICES_DIR if the postgres user can reach it and the
# socket path stays under the 107-byte limit; otherwise /var/tmp/bot4-pg-<hash of SERVICES_DIR>.
pg_choose_datadir() {
  local candidate="$PG_STATE/data" why="" hash
  if is_root && ! runuser -u "$PG_OS_USER" -- test -x "$PG_STATE" 2>/dev/null; then
    why="the '$PG_OS_USER' user can not traverse the parents of $PG_STATE"
  elif ((${#candidate} > 80)); then
    why="$candidate is longer than 80 characters, too long for the socket path"
  fi
  if [[ -n "$why" ]]; then
    hash="$(printf '%s' "$SERVICES_DIR" | sha256sum | cut -c1-12)"
    candidate="/var/tmp/bot4-pg-$hash/data"
    say "postgres: $why; using $candidate instead (recorded in $PG_DATADIR_RECORD)"
  fi
  printf '%s\n' "$candidate" >"$PG_DATADIR_RECORD"
}

pg_pid() {
  local data pid
  data="$(pg_datadir)" || return 1
  pid="$(read_pidfile "$data/postmaster.pid" 2>/dev/null)" || return 1
  pid_running "$pid" && pid_cmdline_has "$pid" postgres "$data" || return 1
  printf '%s\n' "$pid"
}

pg_ensure_installed() {
  if [[ ! -x "$PG_BIN/initdb" || ! -x "$PG_BIN/pg_ctl" ]]; then
    # Debian's package also creates its own "main" cluster (port 5432, started only where an init
    # system runs); it is left alone: ours is a separate cluster on $PG_PORT.
    apt_install postgresql
    [[ -x "$PG_BIN/initdb" ]] || die "postgres: installed package 'postgresql' but $PG_BIN/initdb is still missing (expected PostgreSQL 15); set BOT4_PG_BIN to the server binaries folder"
  fi
  if is_root; then
    id -u "$PG_OS_USER" >/dev/null 2>&1 || die "postgres: running as root needs the '$PG_OS_USER' OS user (initdb refuses root); install the postgresql package or create the user"
    command -v runuser >/dev/null 2>&1 || die "postgres: runuser (util-linux) is needed to run initdb and pg_ctl as '$PG_OS_USER'"
  fi
}

pg_ready() {
  "$PG_BIN/pg_isready" -q -h "$HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres -t 2
}

pg_ensure_db() {
  local exists
  exists="$("$PG_BIN/psql" -h "$HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres -XtAqc \
    "select 1 from pg_database where datname = '$PG_DB'")" || die_with_log "postgres: psql on $HOST:$PG_PORT failed" "$PG_LOG"
  if [[ "$exists" != 1 ]]; then
    "$PG_BIN/createdb" -h "$HOST" -p "$PG_PORT" -U "$PG_USER" "$PG_DB" ||
      die_with_log "postgres: createdb $PG_DB failed" "$PG_LOG"
    say "postgres: created database $PG_DB"
  fi
}

pg_up() {
  local pid data t0
  if pid="$(pg_pid)"; then
    say "postgres: already running (pid $pid) on $HOST:$PG_PORT; nothing to start"
    pg_ensure_db
    return 0
  fi
  t0="$(now)"
  require_free_port postgres "$PG_PORT"
  pg_ensure_installed
  mkdir -p -- "$PG_STATE"
  data="$(pg_datadir)" || {
    pg_choose_datadir
    data="$(pg_datadir)"
  }
  if [[ ! -s "$data/PG_VERSION" ]]; then
    mkdir -p -- "$data"
    if is_root; then
      chown "$PG_OS_USER:" -- "$data"
      [[ "$data" == /var/tmp/bot4-pg-* ]] && chown "$PG_OS_USER:" -- "$(dirname -- "$data")"
    fi
    chmod 700 -- "$data"
    say "postgres: initdb $data"
    run_as_pg "$PG_BIN/initdb" -D "$data" -A trust -U "$PG_USER" -E UTF8 --no-locale >>"$PG_LOG" 2>&1 9>&- ||
      die_with_log "postgres: initdb -D $data failed" "$PG_LOG"
  fi
  printf '\n===== %s infra/services.sh: starting PostgreSQL =====\n' "$(date -Is)" >>"$PG_LOG"
  # No -l: the postmaster inherits this log file, which root opened, so the postgres user needs no
  # write access to .services/logs. pg_ctl detaches the postmaster into its own session.
  run_as_pg "$PG_BIN/pg_ctl" -D "$data" -o "-p $PG_PORT -k $data -c listen_addresses=$HOST" \
    -w -t "$TIMEOUT" start </dev/null >>"$PG_LOG" 2>&1 9>&- ||
    die_with_log "postgres: pg_ctl start failed" "$PG_LOG"
  pid="$(read_pidfile "$data/postmaster.pid")" || die_with_log "postgres: no $data/postmaster.pid after start" "$PG_LOG"
  started postgres "$pid" "$data/postmaster.pid"
  wait_for "postgres: pg_isready on $HOST:$PG_PORT" "$pid" "$PG_LOG" pg_ready
  pg_ensure_db
  ready
  say "postgres: started (pid $pid) on $HOST:$PG_PORT, database $PG_DB, ready in $(elapsed "$t0") s; data $data; log $PG_LOG"
}

pg_down() {
  local pid data t0
  if ! pid="$(pg_pid)"; then
    say "postgres: not running"
    return 0
  fi
  t0="$(now)"
  data="$(pg_datadir)"
  run_as_pg "$PG_BIN/pg_ctl" -D "$data" -m fast -w -t 60 stop >>"$PG_LOG" 2>&1 9>&- ||
    warn "postgres: pg_ctl stop failed (see $PG_LOG); stopping pid $pid directly"
  stop_pid postgres "$pid"
  say "postgres: stopped (pid $pid) in $(elapsed "$t0") s"
}

pg_status() {
  local pid
  if pid="$(pg_pid)"; then
    if pg_ready; then
      say "postgres: running (pid $pid) on $HOST:$PG_PORT, database $PG_DB; data $(pg_datadir); log $PG_LOG"
    else
      say "postgres: running (pid $pid) but $HOST:$PG_PORT does not answer pg_isready; log $PG_LOG"
    fi
    return 0
  fi
  say "postgres: stopped"
  return 3
}

pg_clean() {
  local data
  pg_down
  if data="$(pg_datadir)"; then
    rm -rf -- "$data"
    if [[ "$data" == /var/tmp/bot4-pg-*/data ]]; then
      rm -rf -- "$(dirname -- "$data")"
    fi
  fi
  rm -rf -- "$PG_STATE" "$PG_LOG"
  say "postgres: data removed"
}

# ------------------------------------------------------------------------------------------- redis

redis_pid() {
  local pid
  pid="$(read_pidfile "$R_PID")" || return 1
  pid_running "$pid" && pid_cmdline_has "$pid" redis-server ":$REDIS_PORT" || return 1
  printf '%s\n' "$pid"
}

redis_ensure_installed() {
  command -v redis-server >/dev/null 2>&1 && return 0
  apt_install redis-server
  command -v redis-server >/dev/null 2>&1 || die "redis: installed 'redis-server' but it is still not on PATH"
}

# RESP PING over bash's /dev/tcp, so neither redis-cli nor Python is needed.
redis_ping() {
  timeout 2 bash -c '
    exec 3<>"/dev/tcp/$0/$1" || exit 1
    printf "PING\r\n" >&3
    IFS= read -r -t 2 line <&3 || exit 1
    [[ "$line" == "+PONG"* ]]' "$HOST" "$REDIS_PORT" 2>/dev/null
}

redis_up() {
  local pid t0
  if pid="$(redis_pid)"; then
    say "redis: already running (pid $pid) on $HOST:$REDIS_PORT; nothing to start"
    return 0
  fi
  t0="$(now)"
  [[ -e "$R_PID" ]] && rm -f -- "$R_PID"
  require_free_port redis "$REDIS_PORT"
  redis_ensure_installed
  mkdir -p -- "$R_DATA"
  printf '\n===== %s infra/services.sh: starting Redis =====\n' "$(date -Is)" >>"$R_LOG"
  # stdout/stderr catch errors before redis daemonizes; after that it writes --logfile itself.
  # shellcheck disable=SC2094
  redis-server --port "$REDIS_PORT" --bind "$HOST" --daemonize yes --pidfile "$R_PID" \
    --dir "$R_DATA" --save "" --appendonly no --logfile "$R_LOG" </dev/null >>"$R_LOG" 2>&1 9>&- ||
    die_with_log "redis: redis-server failed to start" "$R_LOG"
  wait_for "redis: pid file $R_PID" "" "$R_LOG" test -s "$R_PID"
  pid="$(read_pidfile "$R_PID")"
  started redis "$pid" "$R_PID"
  wait_for "redis: PING on $HOST:$REDIS_PORT" "$pid" "$R_LOG" redis_ping
  ready
  say "redis: started (pid $pid) on $HOST:$REDIS_PORT, ready in $(elapsed "$t0") s; log $R_LOG"
}

redis_down() {
  local pid t0
  if ! pid="$(redis_pid)"; then
    [[ -e "$R_PID" ]] && {
      warn "redis: removing stale pid file $R_PID (its process is gone)"
      rm -f -- "$R_PID"
    }
    say "redis: not running"
    return 0
  fi
  t0="$(now)"
  stop_pid redis "$pid"
  rm -f -- "$R_PID"
  say "redis: stopped (pid $pid) in $(elapsed "$t0") s"
}

redis_status() {
  local pid
  if pid="$(redis_pid)"; then
    if redis_ping; then
      say "redis: running (pid $pid) on $HOST:$REDIS_PORT; log $R_LOG"
    else
      say "redis: running (pid $pid) but $HOST:$REDIS_PORT does not answer PING; log $R_LOG"
    fi
    return 0
  fi
  say "redis: stopped"
  return 3
}

redis_clean() {
  redis_down
  rm -rf -- "$R_DIR" "$R_LOG"
  say "redis: data removed ($R_DIR)"
}

# -------------------------------------------------------------------------------------- prometheus

prom_pid() {
  local pid
  pid="$(read_pidfile "$P_PID")" || return 1
  pid_running "$pid" && pid_cmdline_has "$pid" prometheus "$P_CONFIG" || return 1
  printf '%s\n' "$pid"
}

# Debian's package (2.42, with promtool). Its maintainer scripts would start the system's own
# prometheus on :9090 (and enable it at boot) where an init system runs: a policy-rc.d that denies
# every start covers the install, and the unit is disabled and stopped afterwards. Ours is a
# separate process on $PROM_PORT with its own config and data.
prom_ensure_installed() {
  local policy=/usr/sbin/policy-rc.d ours=0 rc=0
  command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 && return 0
  if is_root && [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\n# Written by Bot4 infra/services.sh for the prometheus install, removed after it.\nexit 101\n' >"$policy"
    chmod 755 -- "$policy"
    ours=1
  fi
  # A subshell, so a failed install still removes the policy file before the script stops.
  (apt_install prometheus) || rc=$?
  ((ours)) && rm -f -- "$policy"
  ((rc == 0)) || die "prometheus: apt-get install prometheus failed (see above)"
  if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now prometheus.service >/dev/null 2>&1 ||
      warn "prometheus: could not disable the system's prometheus.service; check that nothing listens on :9090"
  fi
  if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
    die "prometheus: installed package 'prometheus' but prometheus or promtool is still not on PATH"
  fi
}

prom_write_config() {
  local port targets=""
  mkdir -p -- "$P_DIR" "$P_DATA" "$P_TARGETS"
  [[ -f "$PROM_TEMPLATE" ]] || die "prometheus: template $PROM_TEMPLATE missing"
  sed -e "s|@RULES_DIR@|$PROM_RULES|g" -e "s|@TARGETS_DIR@|$P_TARGETS|g" -e "s|@LISTEN@|$HOST:$PROM_PORT|g" \
    "$PROM_TEMPLATE" >"$P_CONFIG.tmp"
  mv -f -- "$P_CONFIG.tmp" "$P_CONFIG"
  for port in "${FLOW_METRICS_PORTS[@]}"; do
    targets+="${targets:+, }\"$HOST:$port\""
  done
  # file_sd: Prometheus re-reads this folder while running, so flow ports can be added here (or in
  # another *.json next to it) without a restart.
  printf '[{"targets": [%s], "labels": {"service": "bot4"}}]\n' "$targets" >"$P_TARGETS/flows.json.tmp"
  mv -f -- "$P_TARGETS/flows.json.tmp" "$P_TARGETS/flows.json"
  promtool check config "$P_CONFIG" >>"$P_LOG" 2>&1 ||
    die_with_log "prometheus: promtool check config $P_CONFIG failed" "$P_LOG"
}

prom_ready_check() {
  [[ "$(curl -fsS --max-time 2 "http://$HOST:$PROM_PORT/-/ready" 2>/dev/null)" == *Ready* ]]
}

prom_up() {
  local pid t0
  if pid="$(prom_pid)"; then
    # Like Kafka's topics: a second `up` still applies what changed in the checkout (template,
    # rules), checked by promtool first, through the lifecycle endpoint.
    prom_write_config
    curl -fsS --max-time 10 -X POST "http://$HOST:$PROM_PORT/-/reload" >>"$P_LOG" 2>&1 ||
      die_with_log "prometheus: POST /-/reload failed on $HOST:$PROM_PORT" "$P_LOG"
    say "prometheus: already running (pid $pid) on $HOST:$PROM_PORT; configuration and rules reloaded"
    return 0
  fi
  t0="$(now)"
  [[ -e "$P_PID" ]] && rm -f -- "$P_PID"
  require_free_port prometheus "$PROM_PORT"
  prom_ensure_installed
  command -v curl >/dev/null 2>&1 || apt_install curl
  mkdir -p -- "$P_DIR"
  printf '\n===== %s infra/services.sh: starting Prometheus =====\n' "$(date -Is)" >>"$P_LOG"
  prom_write_config
  # As for Kafka: own session, and the pid file names the prometheus process itself.
  setsid bash -c 'printf "%s\n" "$$" >"$1"; shift; exec "$@"' bash "$P_PID" \
    prometheus "--config.file=$P_CONFIG" "--storage.tsdb.path=$P_DATA" --storage.tsdb.retention.time=7d \
    "--web.listen-address=$HOST:$PROM_PORT" --web.enable-lifecycle </dev/null >>"$P_LOG" 2>&1 9>&- &
  wait_for "prometheus: pid file $P_PID" "" "$P_LOG" test -s "$P_PID"
  pid="$(read_pidfile "$P_PID")"
  started prometheus "$pid" "$P_PID"
  wait_for "prometheus: GET http://$HOST:$PROM_PORT/-/ready" "$pid" "$P_LOG" prom_ready_check
  ready
  say "prometheus: started (pid $pid) on $HOST:$PROM_PORT, scraping $HOST:${FLOW_METRICS_PORTS[0]}-${FLOW_METRICS_PORTS[-1]}, ready in $(elapsed "$t0") s; config $P_CONFIG; log $P_LOG"
}

prom_down() {
  local pid t0
  if ! pid="$(prom_pid)"; then
    [[ -e "$P_PID" ]] && {
      warn "prometheus: removing stale pid file $P_PID (its process is gone)"
      rm -f -- "$P_PID"
    }
    say "prometheus: not running"
    return 0
  fi
  t0="$(now)"
  stop_pid prometheus "$pid"
  rm -f -- "$P_PID"
  say "prometheus: stopped (pid $pid) in $(elapsed "$t0") s"
}

prom_status() {
  local pid
  if pid="$(prom_pid)"; then
    if prom_ready_check; then
      say "prometheus: running (pid $pid) on $HOST:$PROM_PORT; config $P_CONFIG; log $P_LOG"
    else
      say "prometheus: running (pid $pid) but http://$HOST:$PROM_PORT/-/ready does not answer Ready; log $P_LOG"
    fi
    return 0
  fi
  say "prometheus: stopped"
  return 3
}

prom_clean() {
  prom_down
  rm -rf -- "$P_DIR" "$P_LOG"
  say "prometheus: data removed ($P_DIR)"
}

# -------------------------------------------------------------------------------------------- main

clean_all() {
  prom_clean
  kafka_clean
  redis_clean
  pg_clean
  rm -rf -- "$SERVICES_DIR"
  say "all: $SERVICES_DIR removed"
}

main() {
  local cmd="${1:-}" target="${2:-all}" rc=0 svc t0
  if [[ "$cmd" == down && "$target" == clean ]]; then
    cmd=clean
    target="${3:-all}"
  fi
  case "$cmd" in
  up | down | status | clean | fetch) ;;
  tools)
    # Test tools that are not services: Debian's Chromium for the offline-report browser tests,
    # Prometheus's promtool for the rule and config tests (the same package `up` runs).
    if command -v chromium >/dev/null 2>&1; then
      say "tools: chromium present ($(command -v chromium))"
    else
      apt_install chromium
    fi
    if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
      say "tools: prometheus and promtool present ($(command -v promtool))"
    else
      prom_ensure_installed
    fi
    return 0
    ;;
  -h | --help | help)
    usage
    return 0
    ;;
  *)
    usage >&2
    die "unknown command '${cmd}', expected up, down, status, clean, fetch or tools"
    ;;
  esac
  local -a services
  case "$target" in
  all) services=(postgres redis kafka prometheus) ;;
  kafka | postgres | redis | prometheus) services=("$target") ;;
  *)
    usage >&2
    die "unknown service '$target', expected kafka, postgres, redis, prometheus or all"
    ;;
  esac
  ((${#@} <= 3)) || die "too many arguments: $*"

  case "$cmd" in
  status)
    for svc in "${services[@]}"; do
      case "$svc" in
      kafka) kafka_status || rc=3 ;;
      postgres) pg_status || rc=3 ;;
      redis) redis_status || rc=3 ;;
      prometheus) prom_status || rc=3 ;;
      esac
    done
    return "$rc"
    ;;
  up)
    ensure_state_dir
    take_lock
    t0="$(now)"
    for svc in "${services[@]}"; do
      case "$svc" in
      kafka) kafka_up ;;
      postgres) pg_up ;;
      redis) redis_up ;;
      prometheus) prom_up ;;
      esac
    done
    say "up ($target) done in $(elapsed "$t0") s"
    ;;
  down)
    [[ -d "$SERVICES_DIR" ]] || {
      say "nothing to stop: $SERVICES_DIR does not exist"
      return 0
    }
    take_lock
    # Reverse order: Prometheus first, then Kafka (slowest to stop), PostgreSQL last.
    for ((i = ${#services[@]} - 1; i >= 0; i--)); do
      case "${services[$i]}" in
      kafka) kafka_down ;;
      postgres) pg_down ;;
      redis) redis_down ;;
      prometheus) prom_down ;;
      esac
    done
    ;;
  clean)
    [[ -d "$SERVICES_DIR" ]] || {
      say "nothing to clean: $SERVICES_DIR does not exist"
      return 0
    }
    # Only wipe a folder this script created (a wrong BOT4_SERVICES_DIR must not wipe $HOME).
    [[ -e "$MARKER" ]] || die "refusing to clean $SERVICES_DIR: it has no $(basename -- "$MARKER") marker, so this script did not create it"
    take_lock
    if [[ "$target" == all ]]; then
      clean_all
    else
      case "$target" in
      kafka) kafka_clean ;;
      postgres) pg_clean ;;
      redis) redis_clean ;;
      prometheus) prom_clean ;;
      esac
    fi
    ;;
  fetch)
    ensure_state_dir
    for svc in "${services[@]}"; do
      case "$svc" in
      kafka) kafka_fetch ;;
      postgres) pg_ensure_installed ;;
      redis) redis_ensure_installed ;;
      prometheus) prom_ensure_installed ;;
      esac
    done
    say "fetch ($target) done"
    ;;
  esac
}

main "$@"
