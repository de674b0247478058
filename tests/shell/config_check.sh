#!/usr/bin/env bash
# TAP: crm.config_check(live => true) against the emulator: Resend GET /domains says whether
# crm.resend_verified_domain is verified; an unreachable Resend is 'unreachable'.
set -uo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/tap.bash
start_emulator "${CRM_EMULATOR_PORT_CONFIG:-18049}"
trap 'kill $emu_pid 2>/dev/null' EXIT
echo "1..4"
live() { PGOPTIONS="-c crm.resend_base_url=$1 -c crm.resend_api_key=re_config_check_key -c crm.resend_verified_domain=$2" \
  q -c "SELECT status || ': ' || detail FROM crm.config_check(true) WHERE setting = 'resend: GET /domains'"; }

emu POST /_emulator/oauth '{"app": {"resend_domains": [{"name": "317plumber.com", "status": "verified"}, {"name": "northside.example", "status": "pending"}]}}' >/dev/null
check "$(live "$EMU" 317plumber.com)" "ok: 317plumber.com is verified at Resend" "live: the verified domain is verified at Resend"
check "$(live "$EMU" noreply@northside.example | cut -d: -f1)" "invalid" "live: a domain still pending at Resend is invalid, with what to do"
check "$(live http://127.0.0.1:9 317plumber.com | cut -d: -f1)" "unreachable" "live: Resend not answering is unreachable"
check "$(requests | python3 -c "import json,sys; r=[r for r in json.load(sys.stdin) if r['path'] == '/domains']; print(len(r), r[0]['method'], r[0]['headers']['authorization'] == 'Bearer re_config_check_key')")" \
  "2 GET True" "one GET /domains per live check, with the API key"
exit $failed
