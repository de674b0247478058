#!/usr/bin/env bash
# TAP: every function of schema crm that anon or authenticated may execute (found in the
# catalog, so a new one is swept without editing this file), called as anon and as an
# authenticated user of an account that owns nothing, with all-NULL arguments, with oversized
# ones (1.1 MB text, 1.1 MB JSON) and with deep or malformed ones (JSON nested 1,000 deep, an
# unterminated JSON text). Every call must end (ok or an SQLSTATE; none an internal error) and
# the server must not restart. Cancellation of the slow paths is in hostile_api.sh and voice.sh.
set -uo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/tap.bash
echo "1..4"
SWEEPER=00000019-0000-0000-0000-0000000000a1
SWEEPER_USER=00000019-0000-0000-0000-0000000000d1
q >/dev/null <<SQL
DELETE FROM crm.accounts WHERE id = '$SWEEPER';
INSERT INTO crm.accounts (id, name) VALUES ('$SWEEPER', 'Sweeper');
INSERT INTO crm.users (id, account_id, email, role) VALUES ('$SWEEPER_USER', '$SWEEPER', 'sweeper@sweep.test', 'owner');
DROP TABLE IF EXISTS public.sweep_calls;
CREATE TABLE public.sweep_calls (role text, variant text, fn text, outcome text);
GRANT ALL ON public.sweep_calls TO PUBLIC;
SQL
started=$(q -c "SELECT pg_postmaster_start_time()")
# The calls: one statement per function and variant, so a statement_timeout bounds each.
q -c "
SELECT format('SELECT %s(%s)', p.oid::regproc, string_agg(
         CASE v.variant
           WHEN 'null' THEN format('NULL::%s', format_type(t.oid, NULL))
           WHEN 'oversized' THEN CASE
               WHEN t.typname = 'text' THEN 'repeat(''x'', 1100000)'
               WHEN t.typname IN ('json', 'jsonb') THEN format('(''['' || repeat(''1,'', 550000) || ''1]'')::%s', t.typname)
               ELSE format('NULL::%s', format_type(t.oid, NULL)) END
           ELSE CASE
               WHEN t.typname = 'text' THEN '''{\"a\": [1, 2'''
               WHEN t.typname IN ('json', 'jsonb') THEN format('(repeat(''['', 1000) || repeat('']'', 1000))::%s', t.typname)
               WHEN t.typname = 'uuid' THEN '''00000000-0000-0000-0000-000000000000''::uuid'
               ELSE format('NULL::%s', format_type(t.oid, NULL)) END
         END, ', ' ORDER BY a.ord)) || E'\t' || v.variant || E'\t' || p.oid::regproc
FROM pg_proc p
CROSS JOIN (VALUES ('null'), ('oversized'), ('deep')) v(variant)
LEFT JOIN LATERAL unnest(p.proargtypes::oid[]) WITH ORDINALITY a(typ, ord) ON true
LEFT JOIN pg_type t ON t.oid = a.typ
WHERE p.pronamespace = 'crm'::regnamespace AND p.prokind = 'f' AND p.prorettype <> 'trigger'::regtype
  AND (has_function_privilege('anon', p.oid, 'EXECUTE') OR has_function_privilege('authenticated', p.oid, 'EXECUTE'))
GROUP BY p.oid, v.variant
ORDER BY p.oid::regproc::text, v.variant" > /tmp/sweep_calls.tsv
n_fns=$(cut -f3 /tmp/sweep_calls.tsv | sort -u | wc -l)
for role in anon authenticated; do
  claims=""
  [ "$role" = authenticated ] && claims="{\"sub\":\"$SWEEPER_USER\",\"account_id\":\"$SWEEPER\",\"role\":\"authenticated\"}"
  while IFS=$'\t' read -r stmt variant fn; do
    out=$(PGOPTIONS="-c role=$role ${claims:+-c request.jwt.claims=$claims} -c statement_timeout=5000" \
          psql -X -q -At -d "$DB" -v VERBOSITY=verbose -c "$stmt" 2>&1 >/dev/null)
    state=$(echo "$out" | sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\):.*/\1/p' | head -1)
    if [ -z "$out" ]; then state=ok; elif [ -z "$state" ]; then state="other: $(echo "$out" | head -1 | cut -c1-80)"; fi
    psql -X -q -d "$DB" -c "INSERT INTO public.sweep_calls VALUES ('$role', '$variant', '$fn', \$o\$$state\$o\$)" 2>/dev/null
  done < /tmp/sweep_calls.tsv
done
echo "# $n_fns functions executable by anon or authenticated, $(q -c "SELECT count(*) FROM public.sweep_calls") calls"
check "$(q -c "SELECT pg_postmaster_start_time()")" "$started" "the server never restarted (no call crashed a backend)"
check "$(q -c "SELECT string_agg(DISTINCT fn || ' ' || variant || ' as ' || role || ': ' || outcome, '; ') FROM public.sweep_calls
               WHERE outcome LIKE 'XX%' OR outcome LIKE 'other:%' OR outcome LIKE '58%'")" "" \
  "no call ended in an internal error (XX000), a system error (58xxx) or a broken connection"
check "$(q -c "SELECT string_agg(DISTINCT fn || ' ' || variant || ' as ' || role, '; ') FROM public.sweep_calls WHERE outcome = '57014'")" "" \
  "every call ended within statement_timeout (5 s): none had to be cancelled"
check "$(q -c "SELECT count(*) FROM crm.accounts WHERE id <> '$SWEEPER' AND name = 'Sweeper'")/$(q -c "SELECT 1")" "0/1" \
  "nothing leaked into other accounts, and the server still answers"
q -c "DROP TABLE public.sweep_calls" -c "DELETE FROM crm.accounts WHERE id = '$SWEEPER'" >/dev/null
exit $failed
