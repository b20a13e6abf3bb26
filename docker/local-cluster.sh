#!/usr/bin/env bash
# A Ray cluster on one machine, secured like a real one: a head and worker nodes on loopback with
# token authentication, plus an MLflow tracking server. For trying `morphsweep submit` locally.
#
#   docker/local-cluster.sh start [DIR]   # prints the environment to export
#   docker/local-cluster.sh stop  [DIR]
#
# Settings (environment): WORKERS (extra nodes, default 1), CPUS_PER_NODE (default 1),
# GCS_PORT (6379), DASHBOARD_PORT (8265), MLFLOW_PORT (5000). Uses the project's .venv.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
action="${1:-}"
dir="$(mkdir -p "${2:-$here/morphsweep_runs/local-cluster}" && cd "${2:-$here/morphsweep_runs/local-cluster}" && pwd)"
export PATH="$here/.venv/bin:$PATH"
workers="${WORKERS:-1}"
cpus="${CPUS_PER_NODE:-1}"
gcs="${GCS_PORT:-6379}"
dash="${DASHBOARD_PORT:-8265}"
mlflow_port="${MLFLOW_PORT:-5000}"
agent_port="${AGENT_PORT_BASE:-52365}"  # each node on this host needs its own agent port
store="--object-store-memory=${OBJECT_STORE_BYTES:-300000000}"
export RAY_AUTH_MODE=token
export RAY_AUTH_TOKEN_PATH="$dir/auth_token"

# Ray's socket paths must stay under 108 bytes: keep its session files in a short /tmp path.
ray_tmp_file="$dir/ray_tmp"

case "$action" in
start)
  if [ ! -s "$ray_tmp_file" ]; then
    mktemp -d /tmp/msray-XXXXXX >"$ray_tmp_file"
  fi
  ray_tmp="$(cat "$ray_tmp_file")"
  if [ ! -s "$RAY_AUTH_TOKEN_PATH" ]; then
    (umask 077 && python -c 'import secrets; print(secrets.token_hex(32), end="")' > "$RAY_AUTH_TOKEN_PATH")
  fi
  ray start --head --node-ip-address=127.0.0.1 --port="$gcs" --dashboard-host=127.0.0.1 \
    --dashboard-port="$dash" --num-cpus="$cpus" --num-gpus=0 --temp-dir="$ray_tmp" "$store" \
    --dashboard-agent-listen-port="$agent_port" --disable-usage-stats >"$dir/head.log" 2>&1
  for k in $(seq 1 "$workers"); do
    ray start --address="127.0.0.1:$gcs" --node-ip-address=127.0.0.1 --num-cpus="$cpus" --num-gpus=0 \
      "$store" --dashboard-agent-listen-port="$((agent_port + k))" --disable-usage-stats >>"$dir/workers.log" 2>&1
  done
  nohup mlflow server --host 127.0.0.1 --port "$mlflow_port" --workers 1 \
    --backend-store-uri "sqlite:///$dir/mlflow.db" --artifacts-destination "$dir/mlartifacts" \
    >"$dir/mlflow.log" 2>&1 &
  echo $! >"$dir/mlflow.pid"
  for _ in $(seq 1 120); do
    curl -fs "http://127.0.0.1:$mlflow_port/health" >/dev/null 2>&1 && break
    sleep 1
  done
  curl -fs "http://127.0.0.1:$mlflow_port/health" >/dev/null || { echo "mlflow did not start, see $dir/mlflow.log" >&2; exit 1; }
  cat <<INFO
cluster up: $((workers + 1)) Ray nodes on 127.0.0.1 (token auth), MLflow on http://127.0.0.1:$mlflow_port
export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH=$RAY_AUTH_TOKEN_PATH
in the sweep config: tracking_uri: http://127.0.0.1:$mlflow_port   storage_path: $dir/storage
submit: morphsweep submit sweep.yaml --address http://127.0.0.1:$dash
INFO
  ;;
stop)
  # only this cluster's processes: they all run under its session directory
  if [ -s "$ray_tmp_file" ]; then
    ray_tmp="$(cat "$ray_tmp_file")"
    pkill -f "$ray_tmp" 2>/dev/null || true
    sleep 2
    pkill -9 -f "$ray_tmp" 2>/dev/null || true
  fi
  if [ -f "$dir/mlflow.pid" ]; then
    pkill -P "$(cat "$dir/mlflow.pid")" 2>/dev/null || true
    kill "$(cat "$dir/mlflow.pid")" 2>/dev/null || true
    rm -f "$dir/mlflow.pid"
  fi
  echo "cluster stopped"
  ;;
*)
  echo "usage: $0 start|stop [DIR]" >&2
  exit 2
  ;;
esac
