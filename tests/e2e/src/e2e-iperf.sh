#!/bin/sh
# e2e-iperf — iperf3's JSON summary in one line, for the e2e scenarios (guest and dom0):
#   e2e-iperf ARGS...        run "iperf3 -J ARGS..." (a client), print its summary
#   e2e-iperf --parse FILE   summarise a JSON log (a server's --logfile)
# Prints "iperf: sent=BYTES received=BYTES mbps=RECEIVER_MBIT_S"; exit status: iperf3's,
# or 1 when the summary has no received byte count.
if [ "$1" = --parse ]; then
	j=$(cat "$2" 2>/dev/null)
	rc=0
else
	j=$(iperf3 -J "$@")
	rc=$?
fi
echo "$j" | awk -F'[:,]' '
	/"sum_sent"/ { k = "sent" }
	/"sum_received"/ { k = "received" }
	k != "" && /"bytes"/ { gsub(/[ \t]/, "", $2); b[k] = $2 }
	k != "" && /"bits_per_second"/ { gsub(/[ \t]/, "", $2); r[k] = $2; k = "" }
	/"error"/ { print }
	END {
		printf "iperf: sent=%s received=%s mbps=%.1f\n", b["sent"], b["received"], r["received"] / 1e6
		exit b["received"] == ""
	}' || rc=1
exit $rc
