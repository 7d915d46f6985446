#!/bin/sh
# Prints 1, 2, ... N, one line per step: a stand-in for any program whose output
# arrives over time. N is the first argument (default 10); COUNT_DELAY is the pause
# between lines in seconds (default 1; examples/linewire.yaml sets it shorter).
n=${1:-10}
delay=${COUNT_DELAY:-1}
i=1
while [ "$i" -le "$n" ]; do
  echo "$i"
  i=$((i + 1))
  [ "$i" -le "$n" ] && sleep "$delay"
done
exit 0
