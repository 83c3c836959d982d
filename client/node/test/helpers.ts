/** Shared setup of the Node test suite: the server under test and message builders. */
import { randomUUID } from "node:crypto";

import { SessiondClient, create, MessageSchema, Role, type Message } from "../src/index.js";

/** host:port of the sessiond server under test (started by tests/polyglot). */
export const TARGET = process.env["SESSIOND_TARGET"] ?? "";
if (!TARGET) {
  throw new Error("set SESSIOND_TARGET=host:port of a running sessiond server");
}

/** A client of the server under test. */
export function connect(): SessiondClient {
  return new SessiondClient(TARGET, { timeoutMs: 20_000 });
}

/** A session id no other test run uses (the server may be shared between runs). */
export function uniqueId(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

/** An assistant message with some text and one tool call. */
export function toolUse(toolUseId: string, name: string, input: unknown): Message {
  return create(MessageSchema, {
    role: Role.ASSISTANT,
    content: [
      { block: { case: "text", value: "let me check" } },
      {
        block: {
          case: "toolUse",
          value: { toolUseId, name, inputJson: JSON.stringify(input) },
        },
      },
    ],
  });
}

/** A user message with the result of a tool call. */
export function toolResult(toolUseId: string, text: string): Message {
  return create(MessageSchema, {
    role: Role.USER,
    content: [
      {
        block: {
          case: "toolResult",
          value: { toolUseId, status: "success", content: [{ block: { case: "text", value: text } }] },
        },
      },
    ],
  });
}

/** The text of a message's first block ("" when it is not text). */
export function firstText(message: Message | undefined): string {
  const block = message?.content[0]?.block;
  return block?.case === "text" ? block.value : "";
}
