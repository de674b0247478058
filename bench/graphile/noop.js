// The peer of bench/tasks.sh: graphile-worker running N no-op jobs on the same Postgres.
// Jobs are added first (in bulk, graphile_worker.add_jobs), then the runner starts; the figure
// is N divided by the time from the first "job:start" event to the N-th "job:success" (the
// runner's own start-up, its pool and LISTEN, is not counted).
// Env: DATABASE_URL, N (jobs), CONCURRENCY (graphile-worker's own setting, default 10).
const { run, runMigrations } = require("graphile-worker");
const { Client } = require("pg");

async function main() {
  const connectionString = process.env.DATABASE_URL;
  const n = Number(process.env.N || 20000);
  const concurrency = Number(process.env.CONCURRENCY || 10);
  await runMigrations({ connectionString });
  const client = new Client({ connectionString });
  await client.connect();
  await client.query("SELECT graphile_worker.add_jobs(ARRAY(SELECT ROW('noop', '{}'::json, NULL, NULL, NULL, NULL, NULL, NULL)::graphile_worker.job_spec FROM generate_series(1, $1)))", [n]);
  await client.end();

  let done = 0;
  let finish;
  const finished = new Promise((resolve) => (finish = resolve));
  let start = null;
  const runner = await run({
    connectionString,
    concurrency,
    noHandleSignals: true,
    logger: undefined,
    taskList: { noop: async () => {} },
  });
  runner.events.on("job:start", () => {
    if (start === null) start = process.hrtime.bigint();
  });
  runner.events.on("job:success", () => {
    done += 1;
    if (done === n) finish();
  });
  await finished;
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  await runner.stop();
  console.log(JSON.stringify({ jobs: n, seconds: secs, per_second: n / secs, concurrency }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
