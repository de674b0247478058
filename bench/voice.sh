#!/usr/bin/env bash
# Voice agent benchmark (issue 16): crm.call_tool('search_contacts', ...) as a signed-in user
# over an account of 100,000 contacts (target p50 < 5 ms), and MCP tools/list through
# crm.mcp (target < 5 ms). Each call includes the argument check, row-level security and the
# crm.tool_calls log row. Server-side timings (clock_timestamp around each call), 300 calls.
# Expects PGHOST/PGPORT/PGUSER of the running bench cluster (extension in database postgres).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${VOICE_BENCH_CONTACTS:-100000}
CALLS=${VOICE_BENCH_CALLS:-300}
ACC=0000000b-0000-0000-0000-00000000f01c
USR=0000000b-0000-0000-0000-00000000f0d1
psql -X -q -At -v ON_ERROR_STOP=1 <<SQL
-- Supabase's roles, as on a plain Postgres (README "Roles")
DO \$\$ BEGIN
  IF to_regrole('anon') IS NULL THEN CREATE ROLE anon NOLOGIN; END IF;
  IF to_regrole('authenticated') IS NULL THEN CREATE ROLE authenticated NOLOGIN; END IF;
  IF to_regrole('service_role') IS NULL THEN CREATE ROLE service_role NOLOGIN BYPASSRLS; END IF;
END \$\$;
SELECT crm.apply_role_grants();
DELETE FROM crm.accounts WHERE id = '$ACC';
INSERT INTO crm.accounts (id, name) VALUES ('$ACC', 'Voice bench');
INSERT INTO crm.users (id, account_id, email, full_name, role) VALUES ('$USR', '$ACC', 'bench@voice.test', 'Bench User', 'owner');
-- 100,000 contacts: first names from a list of 200, last names of 1,000, emails, phones
INSERT INTO crm.contacts (account_id, first_name, last_name, email, phone)
SELECT '$ACC', 'First' || (i % 200), 'Last' || (i % 1000), 'person' || i || '@bench.test',
       '+1 317 ' || lpad((200 + i / 10000)::text, 3, '0') || ' ' || lpad((i % 10000)::text, 4, '0')
FROM generate_series(1, $N) i;
ANALYZE crm.contacts;
CREATE TABLE IF NOT EXISTS bench.voice_timings (what text, ms double precision);
TRUNCATE bench.voice_timings;
GRANT ALL ON SCHEMA bench TO authenticated;
GRANT ALL ON bench.voice_timings TO authenticated;
SQL
psql -X -q -At -v ON_ERROR_STOP=1 <<SQL
SET ROLE authenticated;
SELECT set_config('request.jwt.claims', '{"sub": "$USR", "account_id": "$ACC", "role": "authenticated"}', false);
DO \$\$
DECLARE t0 timestamptz; r jsonb; q text;
BEGIN
    FOR i IN 1..$CALLS LOOP
        -- a spoken first name, a full name, a last name, an email prefix, a phone number
        q := CASE i % 5 WHEN 0 THEN 'first' || (i % 200) WHEN 1 THEN 'First' || (i % 200) || ' Last' || (i % 1000)
                        WHEN 2 THEN 'last' || (i % 1000) WHEN 3 THEN 'person' || (i * 7) || '@'
                        ELSE '317-' || lpad((200 + (i * 37) / 10000)::text, 3, '0') || '-' || lpad(((i * 37) % 10000)::text, 4, '0') END;
        t0 := clock_timestamp();
        r := crm.call_tool('search_contacts', jsonb_build_object('search', q));
        INSERT INTO bench.voice_timings VALUES ('search_contacts', extract(epoch FROM clock_timestamp() - t0) * 1000);
        IF NOT (r ->> 'ok')::boolean OR jsonb_array_length(r -> 'contacts') = 0 THEN
            RAISE EXCEPTION 'search % found nothing: %', q, r;
        END IF;
        t0 := clock_timestamp();
        r := crm.mcp(json_build_object('jsonrpc', '2.0', 'id', i, 'method', 'tools/list'));
        INSERT INTO bench.voice_timings VALUES ('tools/list', extract(epoch FROM clock_timestamp() - t0) * 1000);
    END LOOP;
END
\$\$;
SQL
printf '\n## Voice tools (server-side timings, %d calls each, 2 cores)\n' "$CALLS"
psql -X -q -At -F ' ' -c "
SELECT what, round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 3), round(percentile_cont(0.95) WITHIN GROUP (ORDER BY ms)::numeric, 3)
FROM bench.voice_timings GROUP BY what ORDER BY what" | while read -r what p50 p95; do
  case "$what" in
    search_contacts) printf 'crm.call_tool(search_contacts) over %d contacts: p50 %s ms, p95 %s ms (target p50 < 5 ms)\n' "$N" "$p50" "$p95" ;;
    *) printf 'crm.mcp tools/list (23 tools with their schemas): p50 %s ms, p95 %s ms (target < 5 ms)\n' "$p50" "$p95" ;;
  esac
done
psql -X -q -c "DELETE FROM crm.accounts WHERE id = '$ACC'"
