-- Template benchmark, our side and the PL/pgSQL peer. Each default template is rendered
-- 100,000 times with realistic variables in ONE SQL statement (SQL call overhead included).
-- Peer (a): what users write by hand today, a PL/pgSQL loop of regexp_replace over the
-- variables doing only plain {{var}} substitution (it does less work than we do: no blocks,
-- no escaping, no dates). Peer (b), Node's handlebars, runs in bench/templates.sh.
\set ON_ERROR_STOP on
\i bench/_harness.sql
\i bench/template_cases.sql
DELETE FROM bench.runs WHERE suite = 'templates';

CREATE OR REPLACE FUNCTION bench.plpgsql_render(tpl text, vars jsonb) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE k text; v text; result text := tpl;
BEGIN
    FOR k, v IN SELECT key, value FROM jsonb_each_text(vars) LOOP
        result := regexp_replace(result, '\{\{\s*' || k || '\s*\}\}', coalesce(v, ''), 'g');
    END LOOP;
    RETURN result;
END $$;

DROP TABLE IF EXISTS bench.tc;
CREATE TABLE bench.tc AS
SELECT t.name, t.html_content, c.vars FROM crm.email_templates t JOIN bench.template_cases c USING (name)
WHERE t.account_id IS NULL;

\o /dev/null
SELECT bench.time_it('templates', 'crm.render_template: ' || name,
       format('SELECT count(crm.render_template(html_content, vars)) FROM bench.tc, generate_series(1, 100000) WHERE name = %L', name), 5, 100000)
FROM bench.tc;
SELECT bench.time_it('templates', 'crm.render_email_template: ' || name,
       -- the variables depend on the series row, so the planner cannot render once and reuse it
       format('SELECT count(*) FROM bench.tc, generate_series(1, 100000) g, LATERAL crm.render_email_template(name, vars || jsonb_build_object(''n'', g), NULL) WHERE tc.name = %L', name), 3, 100000)
FROM bench.tc;
SELECT bench.time_it('templates', 'plpgsql regexp_replace: ' || name,
       format('SELECT count(bench.plpgsql_render(html_content, vars)) FROM bench.tc, generate_series(1, 100000) WHERE name = %L', name), 1, 100000)
FROM bench.tc;
\o

-- What we rendered, for the equality check against Node's output.
DROP TABLE IF EXISTS bench.our_output;
CREATE TABLE bench.our_output AS SELECT name, crm.render_template(html_content, vars) AS html FROM bench.tc;
