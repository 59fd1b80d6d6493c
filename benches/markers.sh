# Sourced by the benchmark scripts: times work between two lines of a
# guest's serial log.
#
# time_markers START END MODE CMD...: runs CMD, with @LOG@ in its arguments
# replaced by a fresh log file, and prints the seconds between the first
# appearance of START and of END in that log ("NaN" if either never came).
# MODE "kill" stops CMD once END came; "wait" lets it end by itself and then
# appends the line holding END to the file $END_LINES, if that is set.
time_markers() {
  local start_marker=$1 end_marker=$2 mode=$3
  shift 3
  local log pid start="" end=""
  log=$(mktemp)
  local args=()
  for a in "$@"; do args+=("${a//@LOG@/$log}"); done
  "${args[@]}" >/dev/null 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    if [ -z "$start" ] && grep -q "$start_marker" "$log" 2>/dev/null; then start=$(date +%s.%N); fi
    if [ -n "$start" ] && grep -q "$end_marker" "$log" 2>/dev/null; then end=$(date +%s.%N); break; fi
    sleep 0.01
  done
  # A fast guest may end between two polls.
  if [ -n "$start" ] && [ -z "$end" ] && grep -q "$end_marker" "$log" 2>/dev/null; then end=$(date +%s.%N); fi
  [ "$mode" = kill ] && kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  if [ "$mode" = wait ] && [ -n "${END_LINES:-}" ]; then
    grep -o "$end_marker.*" "$log" | tr -d '\r' >>"$END_LINES" || true
  fi
  rm -f "$log"
  [ -n "$start" ] && [ -n "$end" ] || { echo "NaN"; return; }
  echo "$end - $start" | bc
}
