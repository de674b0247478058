// bench/queue.sh's enqueue row: putting N emails in a queue from one session, in calls of
// BATCH, ours against graphile-worker 0.18 (installed from npm, its schema by its own
// migrations), each job's payload the same message object, measured two ways:
//   client: one call per batch through node-postgres (graphile-worker's own client):
//           ours  SELECT crm.enqueue_batch($1::jsonb)      (validation, account, suppression, sender)
//           peer  WorkerUtils.addJobs(specs)               (its add_jobs, the official bulk path)
//   sql:    one statement making the N / BATCH calls over pre-built arguments, so only the
//           database's work is timed:
//           ours  crm.enqueue_batch(m)                     for each of the batches
//           peer  graphile_worker.add_jobs(specs)          for each of the batches
//   and the peer's figure in the issue: add_jobs of all N jobs in one call (sql_one_call).
// Sides alternate for ROUNDS rounds (the machine's speed drifts); each round empties both
// queues first. Prints one JSON line per measure: {measure, rows, seconds (best round), per_second}.
// Env: DATABASE_URL, N (20000), BATCH (100), ROUNDS (3), ACCOUNT (the account id to queue for).
const { makeWorkerUtils, runMigrations } = require("graphile-worker");
const { Client } = require("pg");

async function main() {
  const connectionString = process.env.DATABASE_URL;
  const n = Number(process.env.N || 20000);
  const batch = Number(process.env.BATCH || 100);
  const rounds = Number(process.env.ROUNDS || 3);
  const account = process.env.ACCOUNT;
  await runMigrations({ connectionString });
  const utils = await makeWorkerUtils({ connectionString });
  const client = new Client({ connectionString });
  await client.connect();

  const calls = [];
  for (let b = 0; b < n / batch; b++) {
    const messages = [];
    for (let i = 0; i < batch; i++) {
      messages.push({ account_id: account, to: `r${b}-${i}@example.com`, subject: "Enqueue bench", text: `message ${i}` });
    }
    calls.push(messages);
  }
  // the same batches as SQL arguments, for the one-statement measures
  await client.query("DROP TABLE IF EXISTS bench.enqueue_args");
  await client.query("CREATE TABLE bench.enqueue_args (b int PRIMARY KEY, messages jsonb, specs graphile_worker.job_spec[])");
  for (let b = 0; b < calls.length; b++) {
    await client.query(
      "INSERT INTO bench.enqueue_args SELECT $1, $2::jsonb, ARRAY(SELECT json_populate_recordset(null::graphile_worker.job_spec, $3::json))",
      [b, JSON.stringify(calls[b]), JSON.stringify(calls[b].map((m) => ({ identifier: "send_email", payload: m })))]);
  }
  const measures = {
    ours_client: async () => {
      let rows = 0;
      for (const messages of calls) {
        const r = await client.query("SELECT crm.enqueue_batch($1::jsonb) AS id", [JSON.stringify(messages)]);
        rows += r.rowCount;
      }
      return rows;
    },
    graphile_client: async () => {
      let rows = 0;
      for (const messages of calls) {
        const jobs = await utils.addJobs(messages.map((m) => ({ identifier: "send_email", payload: m })));
        rows += jobs.length;
      }
      return rows;
    },
    ours_sql: async () =>
      Number((await client.query("SELECT count(*) AS n FROM bench.enqueue_args a, LATERAL crm.enqueue_batch(a.messages)")).rows[0].n),
    graphile_sql: async () =>
      Number((await client.query("SELECT count(*) AS n FROM bench.enqueue_args a, LATERAL graphile_worker.add_jobs(a.specs)")).rows[0].n),
    graphile_sql_one_call: async () =>
      Number((await client.query("SELECT count(*) AS n FROM graphile_worker.add_jobs(ARRAY(SELECT s FROM bench.enqueue_args a, unnest(a.specs) s))")).rows[0].n),
  };
  const best = {};
  for (let r = 0; r < rounds; r++) {
    for (const m of Object.keys(measures)) {
      await client.query("DELETE FROM crm.email_queue WHERE subject = 'Enqueue bench'");
      await client.query("DELETE FROM graphile_worker._private_jobs");
      await client.query("VACUUM crm.email_queue");
      await client.query("VACUUM graphile_worker._private_jobs");
      const t0 = process.hrtime.bigint();
      const rows = await measures[m]();
      const secs = Number(process.hrtime.bigint() - t0) / 1e9;
      if (rows !== n) throw new Error(`${m}: ${rows} rows queued, not ${n}`);
      best[m] = Math.min(best[m] ?? Infinity, secs);
    }
  }
  await client.query("DELETE FROM crm.email_queue WHERE subject = 'Enqueue bench'");
  await client.query("DELETE FROM graphile_worker._private_jobs");
  await client.query("DROP TABLE bench.enqueue_args");
  await client.end();
  await utils.release();
  for (const m of Object.keys(measures)) {
    console.log(JSON.stringify({ measure: m, rows: n, batch, seconds: best[m], per_second: n / best[m] }));
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
