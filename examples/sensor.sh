#!/bin/sh
# A sensor as a linewire service (mode: service): prints one reading per line, forever.
# The newest line is retained on cmd/{command}/last, which Home Assistant's sensor
# reads. Reads the first thermal zone in °C when the board has one, else the load
# average. SENSOR_INTERVAL (seconds, default 30) sets the pace.
interval=${SENSOR_INTERVAL:-30}
zone=/sys/class/thermal/thermal_zone0/temp
while :; do
  if [ -r "$zone" ]; then
    # millidegrees -> degrees with one decimal
    awk '{ printf "%.1f\n", $1 / 1000 }' "$zone"
  else
    cut -d' ' -f1 /proc/loadavg
  fi
  sleep "$interval"
done
