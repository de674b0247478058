// The peer of bench/queue.sh's enqueue row: putting N emails in a queue from one session, in
// calls of BATCH, through the same Node Postgres client (node-postgres, graphile-worker's own):
//   ours:  SELECT crm.enqueue_batch($1::jsonb)   (validation, account, suppression, sender)
//   peer:  graphile-worker's WorkerUtils.addJobs(specs)  (its add_jobs, the official bulk path)
// Each job's payload is the same message object, so both sides receive the same bytes.
// Sides alternate for ROUNDS rounds (the machine's speed drifts); each round empties both
// queues first. Prints one JSON line per side: {rows, seconds (best round), per_second}.
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
  const best = { ours: Infinity, graphile: Infinity };
  const sides = {
    ours: async () => {
      let rows = 0;
      for (const messages of calls) {
        const r = await client.query("SELECT crm.enqueue_batch($1::jsonb) AS id", [JSON.stringify(messages)]);
        rows += r.rowCount;
      }
      return rows;
    },
    graphile: async () => {
      let rows = 0;
      for (const messages of calls) {
        const jobs = await utils.addJobs(messages.map((m) => ({ identifier: "send_email", payload: m })));
        rows += jobs.length;
      }
      return rows;
    },
  };
  for (let r = 0; r < rounds; r++) {
    for (const side of ["ours", "graphile"]) {
      await client.query("DELETE FROM crm.email_queue WHERE subject = 'Enqueue bench'");
      await client.query("DELETE FROM graphile_worker._private_jobs");
      await client.query("VACUUM crm.email_queue");
      await client.query("VACUUM graphile_worker._private_jobs");
      const t0 = process.hrtime.bigint();
      const rows = await sides[side]();
      const secs = Number(process.hrtime.bigint() - t0) / 1e9;
      if (rows !== n) throw new Error(`${side}: ${rows} rows queued, not ${n}`);
      best[side] = Math.min(best[side], secs);
    }
  }
  await client.query("DELETE FROM crm.email_queue WHERE subject = 'Enqueue bench'");
  await client.query("DELETE FROM graphile_worker._private_jobs");
  await client.end();
  await utils.release();
  for (const side of ["ours", "graphile"]) {
    console.log(JSON.stringify({ side, rows: n, batch, seconds: best[side], per_second: n / best[side] }));
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
