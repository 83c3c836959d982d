/**
 * sessiond from Node.js: start a session, chat with the server's engine, then
 * run a turn with your own runtime, and read the conversation back.
 *
 * Start a server (`make run`, on 127.0.0.1:50051), then:
 *
 *   cd client/node && npm install && npm run example:chat -- 127.0.0.1:50051
 */
import { Role, SessionBusy, SessiondClient, SessionStatus, textMessage } from "@sessiond/client";

const target = process.argv[2] ?? "127.0.0.1:50051";
const client = new SessiondClient(target);

try {
  // 1. A session; the id is yours to choose (or empty to have one generated).
  const sessionId = `node-example-${Date.now()}`;
  await client.start(sessionId, { title: "Trip planning", labels: { example: "node" } });

  // 2. A turn on the server's engine ("echo" by default): text in, text out.
  const reply = await client.chat(sessionId, "hello");
  console.log(`chat: ${reply.text}`);

  // 3. A turn driven by your own runtime (any framework): sessiond claims the
  //    session, hands you the context, and commits what you append.
  const ended = await client.withRun(sessionId, "book a flight to Lisbon", async (turn) => {
    console.log(`run: restored ${turn.history.length} messages of history`);
    await turn.append([textMessage("assistant", "Searching flights...")]);
    // While this turn holds the session, nobody else can run on it:
    try {
      await client.chat(sessionId, "me too");
    } catch (error) {
      if (error instanceof SessionBusy) console.log(`busy until ${error.leaseExpireTime}`);
    }
    return turn.finish([textMessage("assistant", "Booked: LIS, Friday 9:40.")]);
  });
  console.log(`run: turn ${ended.turn?.turnId} ${SessionStatus[ended.session!.status]}`);

  // 4. Read the conversation back.
  for (const stored of await client.allMessages(sessionId)) {
    const block = stored.message?.content[0]?.block;
    const role = stored.message?.role === Role.USER ? "user" : "assistant";
    console.log(`  ${stored.index} ${role}: ${block?.case === "text" ? block.value : block?.case}`);
  }
} finally {
  client.close();
}
