-- Joins Node's figures (loaded by bench/templates.sh into bench.node_results) with ours.
\set ON_ERROR_STOP on
INSERT INTO bench.runs SELECT 'templates', 'node handlebars: ' || name, 1, ms, n FROM bench.node_results;

\echo
\echo '## Templates: each default template rendered 100,000 times in one statement (median ms)'
SELECT label, runs, median_ms, per_second FROM bench.summary WHERE suite = 'templates' ORDER BY label;

\echo
\echo 'Ratios, per core (higher is better for crm.render_template): target >= 5x PL/pgSQL, >= 0.5x Node'
WITH m AS (SELECT label, median_ms FROM bench.summary WHERE suite = 'templates')
SELECT c.name AS template,
       round(p.median_ms / o.median_ms, 1) AS "x vs plpgsql",
       round(n.median_ms / o.median_ms, 2) AS "x vs node handlebars",
       r.html = nr.sample AS "same html as node"
FROM bench.tc c
JOIN m o ON o.label = 'crm.render_template: ' || c.name
JOIN m p ON p.label = 'plpgsql regexp_replace: ' || c.name
JOIN m n ON n.label = 'node handlebars: ' || c.name
JOIN bench.our_output r ON r.name = c.name
JOIN bench.node_results nr ON nr.name = c.name
ORDER BY c.name;
