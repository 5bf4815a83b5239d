#!/usr/bin/env bash
# Run the crmkit nightly job for yesterday and act on its exit code.
#   0 ok -> export segments | 1 failed -> retry | 2 bad config/input -> alert, stop
#   3 quality gate breached -> alert, stop (no exports) | 4 locked -> retry
# Settings (environment): CRMKIT (the crmkit command), CONFIG, AS_OF, RETRIES, WAIT_SECONDS,
# ALERT (a command that gets the message as its argument, e.g. a mail or chat hook),
# SEGMENTS (space-separated segment names to export after a good run).
set -u
CRMKIT=${CRMKIT:-.venv/bin/crmkit}
CONFIG=${CONFIG:-pipelines/nightly.toml}
AS_OF=${AS_OF:-$(date -d yesterday +%F)}
RETRIES=${RETRIES:-3}
WAIT_SECONDS=${WAIT_SECONDS:-900}
ALERT=${ALERT:-logger -t crmkit-nightly}
SEGMENTS=${SEGMENTS:-}

attempt=0
while :; do
    attempt=$((attempt + 1))
    "$CRMKIT" run "$CONFIG" --as-of "$AS_OF" --no-progress
    code=$?
    case $code in
        0)
            for seg in $SEGMENTS; do
                "$CRMKIT" export "$seg" --run "$AS_OF" --format csv \
                    || $ALERT "crmkit $AS_OF: export of $seg failed"
            done
            exit 0 ;;
        2)
            $ALERT "crmkit $AS_OF: bad config or input (exit 2); fix it and rerun"
            exit 2 ;;
        3)
            $ALERT "crmkit $AS_OF: quality gate breached (exit 3); see the run report's drift section"
            exit 3 ;;
        1|4)
            if [ "$attempt" -gt "$RETRIES" ]; then
                $ALERT "crmkit $AS_OF: gave up after $attempt attempts (last exit $code)"
                exit "$code"
            fi
            echo "crmkit $AS_OF: exit $code, retrying in $WAIT_SECONDS s (attempt $attempt)" >&2
            sleep "$WAIT_SECONDS" ;;
        *)
            $ALERT "crmkit $AS_OF: unexpected exit code $code"
            exit "$code" ;;
    esac
done
