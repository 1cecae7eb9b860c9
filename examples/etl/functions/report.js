// Load: runs on a schedule (daily in the README's setup) and writes the totals so far as a
// report object into the `reports` bucket, `daily/{YYYY-MM-DD}.json`. The day is the one the
// tick was scheduled for, so a tick that fires late (after a restart) still files its report
// under its own day. It can also be fired by hand through the `report-now` trigger.
import { kv, storage } from "ferrobase";

export default async function (event) {
  const totals = (await kv.get("totals")) ?? { files: 0, rows: 0, total_cents: 0, by_region: {} };
  // Cron ticks say when they were scheduled; a manual fire may name the day.
  const scheduled = event.data?.scheduled ?? event.data?.day ?? event.time;
  const day = String(scheduled).slice(0, 10);
  const report = { day, generated_for: scheduled, ...totals };
  const key = `daily/${day}.json`;
  await storage.put("reports", key, report);
  return { key, files: totals.files };
}
