/**
 * Round trip of `Chat` from Node: N sequential calls on one session after a
 * warm-up, timed one by one. Prints {"n", "median_ms", "p90_ms", "mean_ms"}.
 *
 *   node dist/bench/chat_rtt.js TARGET [N=100] [WARMUP=10]
 */
import { randomUUID } from "node:crypto";

import { SessiondClient } from "../src/index.js";

const [target, n = "100", warmup = "10"] = process.argv.slice(2);
if (!target) {
  console.error("usage: chat_rtt.js TARGET [N] [WARMUP]");
  process.exit(2);
}
const client = new SessiondClient(target);
try {
  const sessionId = `rtt-node-${randomUUID().slice(0, 8)}`;
  await client.start(sessionId);
  for (let i = 0; i < Number(warmup); i++) await client.chat(sessionId, `warm ${i}`);
  const times: number[] = [];
  for (let i = 0; i < Number(n); i++) {
    const started = process.hrtime.bigint();
    await client.chat(sessionId, `hello ${i}`);
    times.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  times.sort((a, b) => a - b);
  const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))]!;
  const median = times.length % 2 ? at(0.5) : (times[times.length / 2 - 1]! + times[times.length / 2]!) / 2;
  const mean = times.reduce((a, b) => a + b, 0) / times.length;
  console.log(JSON.stringify({ n: times.length, median_ms: median, p90_ms: at(0.9), mean_ms: mean }));
} finally {
  client.close();
}
