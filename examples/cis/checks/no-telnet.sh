#!/bin/sh
# Exit 0 (PASS) when no telnet daemon is installed under the audited root, 1 (FAIL) otherwise.
root="${STOCKADE_ROOT:-/}"
for f in usr/sbin/in.telnetd usr/sbin/telnetd usr/bin/telnetd; do
  if [ -e "$root/$f" ]; then echo "found /$f"; exit 1; fi
done
echo "no telnet daemon"
exit 0
