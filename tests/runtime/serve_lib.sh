# Shared by the end-to-end scripts in tests/runtime: sourced, not run.

# Prints a loopback TCP port that was free a moment ago (for --metrics, which takes no port 0).
free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_port FILE PID WHAT: waits up to 30 s for a --port-file to appear (the process writes it
# once bound). Returns 0 when it has; otherwise says why on stdout (WHAT exited, or never
# became ready) and returns 1, so the caller can show its logs and stop.
wait_port() {
  local file=$1 pid=$2 what=$3
  for _ in $(seq 1 300); do
    [ -s "$file" ] && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$what exited before it was ready"
      return 1
    fi
    sleep 0.1
  done
  echo "$what did not start within 30 s"
  return 1
}
