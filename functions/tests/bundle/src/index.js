// A function as people write it: npm packages imported by name, bundled by esbuild into one
// minified ES module that ends in `export{... as default}`.
import { v4 as uuidv4, validate } from "uuid";
import Papa from "papaparse";

async function handler(event) {
  const parsed = Papa.parse(event.csv, { header: true, dynamicTyping: true, skipEmptyLines: true });
  const totals = {};
  for (const row of parsed.data) totals[row.sku] = (totals[row.sku] || 0) + row.qty;
  const id = uuidv4();
  return { id, valid: validate(id), totals };
}

export { handler as default };
