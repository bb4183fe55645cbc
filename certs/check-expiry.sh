#!/usr/bin/env bash
# Report how long certificates remain valid.
#
#   check-expiry.sh FILE... [--threshold-days N]
#
# Prints "FILE: expires <date> (<N> days left)" per file ("FILE: expired <date> (<N> days ago)"
# once past). Exit status: 0 all fine; 1 some certificate expires within the threshold
# (default 30 days) or has expired; 2 some file is missing or not a PEM certificate.
# Only the first certificate of each file is checked (the leaf, in a chain file).
set -euo pipefail

PROG=$(basename "$0")
THRESHOLD=30
FILES=()

usage() {
  sed -n '2,10s/^# \{0,1\}//p' "$0"
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --threshold-days)
      [[ $# -ge 2 ]] || { echo "$PROG: error: --threshold-days needs a value" >&2; exit 2; }
      THRESHOLD=$2; shift 2 ;;
    --threshold-days=*) THRESHOLD=${1#*=}; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; FILES+=("$@"); break ;;
    -*) echo "$PROG: error: unknown option '$1' (see --help)" >&2; exit 2 ;;
    *) FILES+=("$1"); shift ;;
  esac
done

[[ "$THRESHOLD" =~ ^[0-9]+$ ]] \
  || { echo "$PROG: error: --threshold-days must be a whole number of days, got '$THRESHOLD'" >&2; exit 2; }
[[ ${#FILES[@]} -gt 0 ]] || { echo "$PROG: error: no certificate files given (see --help)" >&2; exit 2; }

now=$(date -u +%s)
status=0
for file in "${FILES[@]}"; do
  if [[ ! -r "$file" ]]; then
    echo "$PROG: error: $file: cannot read the file (missing or no permission)" >&2
    status=2
    continue
  fi
  if ! enddate=$(openssl x509 -in "$file" -noout -enddate 2>/dev/null); then
    echo "$PROG: error: $file: not a PEM X.509 certificate" >&2
    status=2
    continue
  fi
  enddate=${enddate#notAfter=}
  if ! end=$(date -u -d "$enddate" +%s 2>/dev/null); then
    echo "$PROG: error: $file: cannot parse expiry date '$enddate'" >&2
    status=2
    continue
  fi
  # Whole days, rounded down: a certificate with 23 hours left has 0 days left.
  if (( end > now )); then
    days=$(( (end - now) / 86400 ))
    echo "$file: expires $enddate ($days days left)"
    if (( days < THRESHOLD )); then
      echo "$PROG: warning: $file expires in $days days, below the threshold of $THRESHOLD days; rotate it" >&2
      (( status == 2 )) || status=1
    fi
  else
    days=$(( (now - end) / 86400 ))
    echo "$file: expired $enddate ($days days ago)"
    echo "$PROG: warning: $file has expired; clients will refuse it until it is replaced" >&2
    (( status == 2 )) || status=1
  fi
done
exit "$status"
