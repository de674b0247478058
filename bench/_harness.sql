-- A tiny timing harness shared by the benchmark scripts: run a statement N times, keep every
-- wall-clock duration, report the median. Runs in one session so every contender pays the same
-- per-statement overhead.
CREATE SCHEMA IF NOT EXISTS bench;
CREATE TABLE IF NOT EXISTS bench.runs (suite text, label text, run int, ms double precision, items bigint);

CREATE OR REPLACE FUNCTION bench.time_it(suite text, label text, q text, runs int, items bigint)
RETURNS double precision LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz; i int; d double precision;
BEGIN
    FOR i IN 1..runs LOOP
        t0 := clock_timestamp();
        EXECUTE q;
        d := extract(epoch FROM clock_timestamp() - t0) * 1000;
        INSERT INTO bench.runs VALUES (suite, label, i, d, items);
    END LOOP;
    RETURN (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) FROM bench.runs r
            WHERE r.suite = time_it.suite AND r.label = time_it.label);
END $$;

CREATE OR REPLACE VIEW bench.summary AS
SELECT suite, label, count(*) AS runs,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1) AS median_ms,
       round((max(items) / (percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) / 1000))::numeric) AS per_second
FROM bench.runs GROUP BY suite, label;
