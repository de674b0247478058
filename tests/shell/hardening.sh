#!/usr/bin/env bash
# TAP: hardening (issue 9) where several sessions are needed. No input crashes a backend (an
# idle connection opened first still answers afterwards, and the server log has no
# "terminated by signal"), every long call stops within a second of a cancel or timeout, and
# one bad queue row never stops the queue. Also runs the deep-template fuzz against the real
# backend (CRM_FUZZ_CASES, default 150; `make fuzz` runs 5,000).
set -uo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/tap.bash
start_emulator "${CRM_EMULATOR_PORT_HARDENING:-18031}"
tmp=$(mktemp -d)
cleanup() { kill $emu_pid 2>/dev/null; exec 3>&- 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
LOGFILE=$(q -c "SHOW crm_test.log_file")
ACCT=00000009-0000-0000-0000-000000000999
echo "1..19"

# An idle connection, opened before any attack: a crashed backend makes the postmaster end it.
mkfifo "$tmp/idle"
psql -X -At -d "$DB" < "$tmp/idle" > "$tmp/idle.out" 2>&1 &
idle_pid=$!
exec 3>"$tmp/idle"
echo "SELECT 'before';" >&3
signals_before=$(grep -c "terminated by signal" "$LOGFILE" 2>/dev/null)

# sqlstate ROLE SQL: run as ROLE, print the SQLSTATE of the error (or "ok").
sqlstate() { # (the SQL goes through stdin: one argv string is limited to 128 KiB)
  local state
  state=$(printf 'SET ROLE %s;\n%s;\n' "$1" "$2" | psql -X -At -d "$DB" -v ON_ERROR_STOP=1 -v VERBOSITY=verbose 2>&1 >/dev/null \
    | sed -n 's/^[^E]*ERROR:  \([0-9A-Z]\{5\}\):.*/\1/p' | head -1)
  echo "${state:-ok}"
}
deep() { python3 -c "import sys; o, c, n = sys.argv[1:]; print(o * int(n) + c * int(n))" "$1" "$2" "$3"; }

# §1 Crash cases, as anon (PostgREST's unauthenticated role).
sub=$(python3 -c "n=10000; print('{{x ' + '(f ' * n + 'a' + ')' * n + '}}')")
check "$(sqlstate anon "SELECT crm.render_template('$sub')")" "54000" "anon: 10,000 nested subexpressions are refused (54000), not a SIGSEGV"
check "$(sqlstate anon "SELECT crm.render_template('$(deep '\\{{#each a}}' '{{/each}}' 20000)')")" "54000" \
  "anon: 20,000 blocks behind escaped-backslash mustaches (\\\\{{) are refused"
check "$(sqlstate anon "SELECT crm.render_template('$(deep '{{~#if a~}}' '{{~/if~}}' 40000)')")" "54000" "anon: 40,000 blocks with whitespace control are refused"
check "$(sqlstate anon "SELECT crm.template_variables('$sub')")" "54000" "crm.template_variables refuses the same"
check "$(sqlstate anon "SELECT * FROM crm._render_email_parts('$sub', 'x', NULL)")" "54000" "crm._render_email_parts refuses the same"
q -c "DELETE FROM crm.accounts WHERE id = '$ACCT'" -c "INSERT INTO crm.accounts (id, name, default_from_email) VALUES ('$ACCT', 'Hardening', 'H <h@hardening.example>')"
check "$(sqlstate authenticated "SELECT set_config('request.jwt.claims', '{\"account_id\": \"$ACCT\"}', false); INSERT INTO crm.email_templates (account_id, name, subject, html_content) VALUES ('$ACCT', 'deep', 's', '$(deep '{{#each a}}' '{{/each}}' 5000)')")" \
  "54000" "a tenant cannot store a template nested 5,000 deep (the insert trigger refuses it)"

# Deep-template fuzz through the installed extension (tests/fuzz/deep_templates.py).
cases=${CRM_FUZZ_CASES:-150}
python3 tests/fuzz/deep_templates.py "$cases" "${CRM_FUZZ_SEED:-$RANDOM}" > "$tmp/fuzz.sql"
psql -X -At -d "$DB" -v VERBOSITY=verbose -f "$tmp/fuzz.sql" > "$tmp/fuzz.out" 2>&1
check "$(grep -c 'ERROR:  XX000' "$tmp/fuzz.out")" "0" "fuzz: $cases deep templates in every variant, no internal error (XX000)"
check "$(psql -X -At -d "$DB" -c "SELECT 'up'" 2>&1)" "up" "fuzz: the server still answers"

# §2 Cancel and timeout within a second, with the work budget raised out of the way.
loops='{{#each a}}{{#each @root.a}}{{#each @root.a}}{{#each @root.a}}{{/each}}{{/each}}{{/each}}{{/each}}'
vars=$(python3 -c "import json; print(json.dumps({'a': list(range(300))}))")
check "$(sqlstate anon "SELECT crm.render_template('$loops', '$vars')")" "54000" "nested loops that write nothing hit crm.template_max_steps (54000)"
timed() { # SQL as anon under statement_timeout 300ms: prints "SQLSTATE seconds"
  local start end state
  start=$(date +%s.%N)
  state=$(psql -X -At -d "$DB" -v VERBOSITY=verbose -c "SET crm.template_max_steps = 2147483647" -c "SET statement_timeout = '300ms'" -c "SET ROLE anon" -c "$1" 2>&1 >/dev/null | sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\):.*/\1/p' | head -1)
  end=$(date +%s.%N)
  echo "$state $(echo "$end - $start" | bc)"
}
read -r state secs <<< "$(timed "SELECT crm.render_template('$loops', '$vars')")"
check "$state/$(echo "$secs < 1.3" | bc)" "57014/1" "statement_timeout (300 ms) stops a render of 8.1e9 loop iterations (after ${secs}s)"
read -r state secs <<< "$(timed "SELECT length(crm.html_to_text(repeat('<style>x</b>', 20000000)))")"
check "$state/$(echo "$secs < 1.3" | bc)" "57014/1" "statement_timeout stops html_to_text on 240 MB (after ${secs}s)"
psql -X -At -d "$DB" -c "SET crm.template_max_steps = 2147483647" -c "SET application_name = 'hardening-cancel'" \
  -c "SELECT crm.render_template('$loops', '$vars')" > "$tmp/cancel.out" 2>&1 &
victim=$!
for _ in $(seq 50); do [ -n "$(q -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'hardening-cancel' AND state = 'active'")" ] && break; sleep 0.1; done
sleep 0.3
start=$(date +%s.%N)
q -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'hardening-cancel'" >/dev/null
wait $victim
secs=$(echo "$(date +%s.%N) - $start" | bc)
check "$(grep -o 'canceling statement due to user request' "$tmp/cancel.out")/$(echo "$secs < 1.0" | bc)" "canceling statement due to user request/1" \
  "pg_cancel_backend stops a render (after ${secs}s)"

# §3 One bad row must not stop the queue.
export PGOPTIONS="-c crm.resend_base_url=$EMU -c crm.resend_api_key=re_hardening -c crm.resend_rate_limit=0 -c crm.resend_batch=off"
q -c "UPDATE crm.email_queue SET status = 'cancelled' WHERE status IN ('pending', 'scheduled', 'processing')" >/dev/null
deep_headers="{\"X-A\": $(deep '[' ']' 200)}"
q <<SQL >/dev/null
-- As the server side (a superuser writes rows directly): what no tenant can write any more.
INSERT INTO crm.email_queue (id, account_id, recipient_email, to_addresses, subject, text_content, from_email, headers, priority)
VALUES ('b0000000-0000-0000-0000-000000000001', '$ACCT', 'bad@example.com', '{bad@example.com}', 'bad', 't', 'h@hardening.example', '$deep_headers', 10);
INSERT INTO crm.email_queue (id, account_id, recipient_email, to_addresses, subject, text_content, from_email)
VALUES ('b0000000-0000-0000-0000-000000000002', '$ACCT', 'good@example.com', '{good@example.com}', 'good', 't', 'h@hardening.example');
-- A row whose sender died with it as many times as it may be tried, and one that may go again.
INSERT INTO crm.email_queue (id, account_id, recipient_email, to_addresses, subject, text_content, from_email, status, attempts, max_attempts, locked_until)
VALUES ('b0000000-0000-0000-0000-000000000003', '$ACCT', 'dead@example.com', '{dead@example.com}', 'dead', 't', 'h@hardening.example', 'processing', 3, 3, now() - interval '1 minute'),
       ('b0000000-0000-0000-0000-000000000004', '$ACCT', 'again@example.com', '{again@example.com}', 'again', 't', 'h@hardening.example', 'processing', 1, 3, now() - interval '1 minute');
SQL
result=$(q -c "SELECT crm.process_email_queue(10)")
status() { q -c "SELECT status FROM crm.email_queue WHERE id = 'b0000000-0000-0000-0000-00000000000$1'"; }
check "$(status 1)/$(q -c "SELECT last_error FROM crm.email_queue WHERE id = 'b0000000-0000-0000-0000-000000000001'")" \
  "failed/the row cannot be sent: JSON nested deeper than 128 levels" "a row with headers nested 200 deep fails alone, with the reason"
check "$(status 2)" "sent" "... and the row beside it is sent ($result)"
check "$(status 3)/$(q -c "SELECT last_error LIKE 'its sender stopped while sending it 3 times%' FROM crm.email_queue WHERE id = 'b0000000-0000-0000-0000-000000000003'")" \
  "failed/t" "an expired lease counts as an attempt: a row at max_attempts fails instead of looping"
check "$(status 4)/$(q -c "SELECT attempts FROM crm.email_queue WHERE id = 'b0000000-0000-0000-0000-000000000004'")" "sent/2" \
  "a row with attempts left is reclaimed, and the reclaim counts"
unset PGOPTIONS

# The crash checks: the idle connection still answers, and no backend died of a signal.
echo "SELECT 'after';" >&3
exec 3>&-
wait $idle_pid
check "$(tr '\n' ' ' < "$tmp/idle.out")" "before after " "the idle connection opened before the attacks still answers: no backend crashed"
check "$(grep -c "terminated by signal" "$LOGFILE")" "$signals_before" "the server log has no new 'terminated by signal' line"
check "$(grep -c "stack overflow\|fatal runtime error" "$LOGFILE")" "0" "... nor a Rust abort"
exit $failed
