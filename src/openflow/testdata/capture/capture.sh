#!/bin/bash
# capture.sh VERSION PORT OUTFILE: runs ovs-ofctl commands against fakesw.py and
# records, for each command, the messages it sent (minus hello/multipart setup).
ver=$1; port=$2; out=$3; log=$(mktemp)
proto=""; [ "$ver" = 4 ] && proto="-O OpenFlow13"
rm -f $log; : > $out
python3 "$(dirname "$0")/fakesw.py" $port $ver $log 3 & pid=$!
sleep 0.5
run() {
  : > $log
  timeout 5 ovs-ofctl $proto "$@" tcp:127.0.0.1:$port "${ARGS[@]}" >/dev/null 2>"$log.err"
  echo "rc=$? $*" >&2; cat "$log.err" >&2
}
while IFS='|' read -r cmd arg; do
  [ -z "$cmd" ] && continue
  : > $log
  if [ -n "$arg" ]; then timeout 5 ovs-ofctl $proto $cmd tcp:127.0.0.1:$port "$arg" >/dev/null 2>"$log.err"
  else timeout 5 ovs-ofctl $proto $cmd tcp:127.0.0.1:$port >/dev/null 2>"$log.err"; fi
  rc=$?
  echo "# ovs-ofctl $proto $cmd tcp:... '$arg' (rc=$rc)" >> $out
  cat $log >> $out
  [ $rc != 0 ] && cat "$log.err" >&2
done
kill $pid
