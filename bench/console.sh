#!/usr/bin/env bash
# How fast the web console draws on this machine, in headless Chromium: the
# application list of a customer with 200 applications and one application's
# page, after the assets are cached: first paint, the view drawn with the
# API's answer, and requests per load (median and worst of 7 loads). Starts
# its own control plane (release build) as bench/api.sh does.
exec "$(dirname "$0")/api.sh" --console "$@"
