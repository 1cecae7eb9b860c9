// Transform: runs for every summary message on the `summaries` queue and adds it to the
// running totals in KV under `totals`.
//
// Summaries all carry the queue key "totals", so the queue delivers them one at a time and in
// order: this read-modify-write never runs twice at once. A run that crashes after its write
// but before the message was acknowledged is delivered again; its write then carries the same
// idempotency key (the message id) and is not applied a second time.
import { kv } from "ferrobase";

export default async function (event) {
  const summary = event.data.body;
  const totals = (await kv.get("totals")) ?? { files: 0, rows: 0, total_cents: 0, by_region: {} };
  totals.files += 1;
  totals.rows += summary.rows;
  totals.total_cents += summary.total_cents;
  for (const [region, cents] of Object.entries(summary.by_region)) {
    totals.by_region[region] = (totals.by_region[region] ?? 0) + cents;
  }
  await kv.put("totals", totals);
  return totals;
}
