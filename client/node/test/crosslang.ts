/**
 * The Node half of the cross-language test (tests/polyglot/test_cross_language.py):
 * continues a session that the Python client wrote, as the agent runtime.
 *
 *   node dist/test/crosslang.js TARGET SESSION_ID FIXTURE.json
 *
 * FIXTURE.json: {"input": <Message>, "authored": [<Message>...], "state": {...}},
 * messages in the proto3 JSON mapping. The turn appends a copy of every
 * history message exactly as received (decoded and re-encoded by protobuf-es),
 * then the fixture's messages, and finishes with the fixture's state. Prints a
 * JSON summary (indices of the copies and of the authored messages).
 */
import { readFile } from "node:fs/promises";

import { fromJson, MessageSchema, SessiondClient, type JsonValue } from "../src/index.js";

const [target, sessionId, fixturePath] = process.argv.slice(2);
if (!target || !sessionId || !fixturePath) {
  console.error("usage: crosslang.js TARGET SESSION_ID FIXTURE.json");
  process.exit(2);
}
const fixture = JSON.parse(await readFile(fixturePath, "utf8")) as {
  input: JsonValue;
  authored: JsonValue[];
  state: unknown;
};
const client = new SessiondClient(target);
try {
  const summary = await client.withRun(sessionId, fromJson(MessageSchema, fixture.input), async (turn) => {
    const copies = await turn.append(turn.history.map((m) => m.message!));
    const authored = await turn.append(fixture.authored.map((json) => fromJson(MessageSchema, json)));
    const ended = await turn.finish([], { state: fixture.state });
    return {
      history: turn.history.map((m) => Number(m.index)),
      copies: copies.messages.map((m) => Number(m.index)),
      authored: authored.messages.map((m) => Number(m.index)),
      turnId: ended.turn!.turnId,
      status: ended.session!.status,
    };
  });
  console.log(JSON.stringify(summary));
} finally {
  client.close();
}
