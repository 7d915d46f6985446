#!/bin/sh
# Reads one name per stdin line and answers "hello NAME" for each, until stdin
# closes: the smallest interactive program (send lines to run/{run}/in, close with
# run/{run}/eof).
while IFS= read -r name || [ -n "$name" ]; do
  echo "hello $name"
done
