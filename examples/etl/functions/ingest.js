// Extract: runs once for every CSV uploaded to the `uploads` bucket.
//
// Loads each row into KV as `orders/{order_id}` and publishes one summary of the file to the
// `summaries` queue for the aggregator. A malformed file throws: the rule retries it and then
// moves it to the dead-letter list, where it can be replayed once fixed.
//
// The function may run more than once for the same upload (a retry, or a restart while it
// ran). That is safe: while it handles an event, every write it makes carries the event id as
// an idempotency key, so a repeated run makes the same writes and none of them is applied twice.
import { kv, queue, storage } from "ferrobase";

const HEADER = ["order_id", "region", "amount"];

export default async function (event) {
  const { bucket, key } = event.data;
  const object = await storage.get(bucket, key);
  if (object === null) {
    // Deleted again before we got to it: nothing to load.
    return { file: key, skipped: true };
  }
  const orders = parseOrders(object.body, key);

  const byRegion = {};
  let totalCents = 0;
  for (const order of orders) {
    byRegion[order.region] = (byRegion[order.region] ?? 0) + order.amount_cents;
    totalCents += order.amount_cents;
  }
  // The writes go out together; the host keeps their order for the idempotency keys.
  await Promise.all(
    orders.map((order) => kv.put(`orders/${order.order_id}`, { ...order, file: key })),
  );
  // One key for every summary: the queue hands them to the aggregator one at a time, in
  // publish order, so its read-modify-write of the totals never races with itself.
  await queue.publish(
    "summaries",
    { file: key, rows: orders.length, total_cents: totalCents, by_region: byRegion },
    { key: "totals" },
  );
  return { file: key, rows: orders.length, total_cents: totalCents };
}

/** The orders of a CSV file with the header `order_id,region,amount` (amount like 12.34). */
function parseOrders(text, file) {
  const lines = text.split(/\r?\n/).filter((line) => line.trim() !== "");
  if (lines.length === 0 || lines[0].trim() !== HEADER.join(",")) {
    throw new Error(`${file}: the first line must be "${HEADER.join(",")}"`);
  }
  const seen = new Set();
  return lines.slice(1).map((line, index) => {
    const where = `${file} line ${index + 2}`;
    const fields = line.split(",").map((field) => field.trim());
    if (fields.length !== HEADER.length) {
      throw new Error(`${where}: expected ${HEADER.length} fields, found ${fields.length}`);
    }
    const [orderId, region, amount] = fields;
    if (!/^[A-Za-z0-9_-]+$/.test(orderId)) {
      throw new Error(`${where}: order_id "${orderId}" must be letters, digits, _ or -`);
    }
    if (seen.has(orderId)) {
      throw new Error(`${where}: order ${orderId} appears twice`);
    }
    seen.add(orderId);
    if (region === "") {
      throw new Error(`${where}: region is empty`);
    }
    return { order_id: orderId, region, amount_cents: parseCents(amount, where) };
  });
}

/** "12.34" → 1234, without going through floating point. */
function parseCents(amount, where) {
  const match = /^(\d+)(?:\.(\d{1,2}))?$/.exec(amount);
  if (match === null) {
    throw new Error(`${where}: amount "${amount}" is not a number like 12.34`);
  }
  const cents = Number(match[1]) * 100 + Number((match[2] ?? "0").padEnd(2, "0"));
  if (!Number.isSafeInteger(cents)) {
    throw new Error(`${where}: amount "${amount}" is too large`);
  }
  return cents;
}
