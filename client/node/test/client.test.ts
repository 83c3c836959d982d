/**
 * The Node client against a real sessiond server (SESSIOND_TARGET), started
 * by tests/polyglot/test_node_client.py. Run: `node --test dist/test/*.test.js`.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { gunzipSync } from "node:zlib";

import {
  equals,
  FingerprintMismatch,
  ImportConflictPolicy,
  InvalidArgument,
  InvalidId,
  MessageSchema,
  NotFoundError,
  ReviewAction,
  ReviewState,
  ReviewsPending,
  RuntimeRequired,
  ServingStatus,
  SessionAlreadyExists,
  SessionBusy,
  SessiondClient,
  SessiondError,
  SessionNotFound,
  SessionService,
  SessionStatus,
  textMessage,
  TurnStatus,
} from "../src/index.js";
import { connect, firstText, toolResult, toolUse, uniqueId } from "./helpers.js";

let client: SessiondClient;

before(async () => {
  client = connect();
  await client.waitForReady();
});

after(() => client.close());

describe("sessions", () => {
  test("start, chat, get, list and read messages", async () => {
    const sid = uniqueId("node-chat");
    const started = await client.start(sid, { title: "From Node", labels: { lang: "node" } });
    assert.equal(started.created, true);
    assert.equal(started.session?.status, SessionStatus.NEW);

    const reply = await client.chat(sid, "hello from node");
    assert.equal(reply.text, "echo: hello from node");
    assert.equal(reply.session?.messageCount, 2n);
    assert.deepEqual(
      reply.messages.map((m) => m.index),
      [0n, 1n],
    );

    const session = await client.get(sid);
    assert.equal(session.title, "From Node");
    assert.equal(session.status, SessionStatus.FINISHED);
    assert.equal(session.turnCount, 1n);

    const listed = await client.list({ labels: { lang: "node" }, pageSize: 1000 });
    assert.ok(listed.sessions.some((s) => s.sessionId === sid));

    const texts = (await client.allMessages(sid)).map((m) => firstText(m.message));
    assert.deepEqual(texts, ["hello from node", "echo: hello from node"]);

    const again = await client.start(sid, { returnExisting: true });
    assert.equal(again.created, false);
  });

  test("errors are typed from the ErrorInfo reason", async () => {
    const missing = uniqueId("node-missing");
    await assert.rejects(client.get(missing), (error: unknown) => {
      assert.ok(error instanceof SessionNotFound);
      assert.ok(error instanceof NotFoundError && error instanceof SessiondError);
      assert.equal(error.code, "NOT_FOUND");
      assert.equal(error.reason, "SESSION_NOT_FOUND");
      assert.equal(error.metadata["session_id"], missing);
      return true;
    });
    await assert.rejects(client.start("../escape"), (error: unknown) => {
      assert.ok(error instanceof InvalidId && error instanceof InvalidArgument);
      assert.equal(error.metadata["field"], "session_id");
      return true;
    });
    const sid = uniqueId("node-twice");
    await client.start(sid);
    await assert.rejects(client.start(sid), SessionAlreadyExists);
    await client.delete(sid);
    await assert.rejects(client.get(sid), SessionNotFound);
  });

  test("archive and unarchive with etags", async () => {
    const sid = uniqueId("node-archive");
    const { session } = await client.start(sid);
    const archived = await client.archive(sid, { etag: session!.etag });
    assert.equal(archived.archived, true);
    await assert.rejects(client.chat(sid, "hi"), (e: unknown) => e instanceof SessiondError && e.reason === "SESSION_ARCHIVED");
    const back = await client.unarchive(sid);
    assert.equal(back.archived, false);
    await assert.rejects(client.archive(sid, { etag: archived.etag }), (e: unknown) => e instanceof SessiondError && e.reason === "ETAG_MISMATCH");
  });
});

describe("Run: Node as the agent runtime", () => {
  test("context, appends, hibernate with a review, resolve, resume, finish", async () => {
    const sid = uniqueId("node-run");
    const other = uniqueId("node-run-other");
    await client.start(sid, { agentStateJson: '{"step": 0}' });
    await client.start(other);
    const chatTokens = (await client.chat(sid, "first")).turn!.usage!.totalTokens;

    // Turn 1: the runtime gets its context, calls a tool that needs a human, hibernates.
    const turn = await client.run(sid, "email my boss");
    assert.equal(turn.started?.session?.status, SessionStatus.RUNNING);
    assert.ok((turn.started?.session?.lease?.epoch ?? 0n) >= 1n);
    assert.deepEqual(JSON.parse(turn.started!.agentStateJson), { step: 0 });
    assert.deepEqual(turn.history.map((m) => firstText(m.message)), ["first", "echo: first"]);
    const ack = await turn.append([toolUse("t9", "send_email", { to: "boss@example.com" })], {
      state: { step: 1 },
      usage: [10, 3],
    });
    assert.deepEqual(ack.messages.map((m) => m.index), [2n, 3n]); // the input, then the tool call
    const hibernated = await turn.hibernate([], {
      snapshot: '{"pc": 7}',
      reviews: [
        {
          reviewId: "rv-1",
          toolUseId: "t9",
          toolName: "send_email",
          inputJson: '{"to": "boss@example.com"}',
          description: "sends mail on your behalf",
        },
      ],
    });
    assert.equal(hibernated.session?.status, SessionStatus.WAITING);
    assert.equal(hibernated.session?.pendingReviewCount, 1);
    assert.equal(hibernated.turn?.status, TurnStatus.WAITING);
    assert.equal(hibernated.session?.lease, undefined);

    // A second session waits for a review too.
    await client.withRun(other, "clean up", (t) => t.hibernate([], { reviews: [{ toolName: "rm", inputJson: "{}" }] }));

    // Pending reviews across sessions (paged; the server may hold other tests' reviews).
    const seen: Array<[string, string]> = [];
    let pageToken = "";
    do {
      const page = await client.listPendingReviews({ pageSize: 2, pageToken });
      for (const review of page.reviews) {
        if (review.sessionId === sid || review.sessionId === other) seen.push([review.sessionId, review.toolName]);
      }
      pageToken = page.nextPageToken;
    } while (pageToken);
    assert.deepEqual(seen, [
      [sid, "send_email"],
      [other, "rm"],
    ]);
    const mine = await client.listPendingReviews({ sessionId: sid });
    assert.deepEqual(mine.reviews.map((r) => r.reviewId), ["rv-1"]);
    const fingerprint = mine.reviews[0]!.fingerprint;

    // Not yet: reviews pending; and Resume is for server engines only.
    await assert.rejects(client.run(sid, undefined, { resume: true }), ReviewsPending);
    await assert.rejects(client.resume(sid), RuntimeRequired);
    await assert.rejects(
      client.resolveReview("rv-1", {
        sessionId: sid,
        fingerprint: "0".repeat(64),
        decision: { action: ReviewAction.APPROVE },
      }),
      FingerprintMismatch,
    );
    const resolved = await client.resolveReview("rv-1", {
      fingerprint,
      decision: {
        action: ReviewAction.EDIT,
        editedInputJson: '{"to": "team@example.com"}',
        reviewer: "ada",
        comment: "send it to the team",
      },
    });
    assert.equal(resolved.review?.state, ReviewState.DECIDED);
    assert.equal(resolved.session?.status, SessionStatus.HIBERNATED);

    // Turn 1 resumed: snapshot and decisions come back; the runtime finishes.
    const ended = await client.withRun(sid, undefined, async (resumed) => {
      assert.equal(new TextDecoder().decode(resumed.started?.snapshot?.data), '{"pc": 7}');
      const decision = resumed.started!.reviews[0]!.decision!;
      assert.equal(decision.action, ReviewAction.EDIT);
      assert.deepEqual(JSON.parse(decision.editedInputJson), { to: "team@example.com" });
      assert.equal(resumed.history.length, 4);
      await resumed.append([toolResult("t9", "sent")]);
      return resumed.finish([textMessage("assistant", "Sent to the team.")], { usage: [5, 2] });
    }, { resume: true });
    assert.equal(ended.session?.status, SessionStatus.FINISHED);
    assert.equal(ended.turn?.status, TurnStatus.FINISHED);
    assert.equal(ended.turn?.resumeCount, 1);
    assert.equal(ended.session?.messageCount, 6n);
    assert.equal(ended.session?.lease, undefined);

    const replay = await client.replay(sid);
    const events = replay.turns[1]!.events.map((e) => e.type);
    assert.deepEqual(events.slice(0, 2), ["turn.started", "messages.appended"]);
    for (const type of ["review.requested", "review.decided", "hibernated", "resumed"]) {
      assert.ok(events.includes(type), `${type} in ${events}`);
    }
    assert.equal(events.at(-1), "finished");
    assert.equal(replay.turns[1]!.reviews[0]!.decision?.reviewer, "ada");
    const session = await client.get(sid);
    assert.deepEqual(JSON.parse(session.agents[0]!.stateJson), { step: 1 });
    assert.equal(session.usage?.totalTokens, chatTokens + 13n + 7n);
    const texts = (await client.allMessages(sid)).map((m) => m.message?.content.at(-1)?.block.case);
    assert.deepEqual(texts, ["text", "text", "text", "toolUse", "toolResult", "text"]);
  });

  test("a concurrent run gets SessionBusy with the lease expiry", async () => {
    const sid = uniqueId("node-busy");
    await client.start(sid);
    const first = await client.run(sid, "one");
    try {
      const before = Date.now();
      await assert.rejects(client.run(sid, "two"), (error: unknown) => {
        assert.ok(error instanceof SessionBusy);
        assert.equal(error.code, "ABORTED");
        assert.ok(error.leaseExpireTime, "lease_expire_time in the ErrorInfo metadata");
        assert.ok(Date.parse(error.leaseExpireTime!) > before - 1000);
        return true;
      });
      // A second client (another runtime) is refused as well, and so is Chat.
      const second = connect();
      try {
        await assert.rejects(second.run(sid, "three"), SessionBusy);
        await assert.rejects(second.chat(sid, "four"), SessionBusy);
      } finally {
        second.close();
      }
      await first.finish([textMessage("assistant", "done")]);
    } finally {
      first.cancel();
    }
    assert.equal((await client.chat(sid, "five")).text, "echo: five");
  });

  test("withRun fails the turn when the runtime throws", async () => {
    const sid = uniqueId("node-fail");
    await client.start(sid);
    await assert.rejects(
      client.withRun(sid, "try", async (turn) => {
        await turn.append([textMessage("assistant", "step one")]);
        throw new Error("tool crashed");
      }),
      /tool crashed/,
    );
    const session = await client.get(sid);
    assert.equal(session.status, SessionStatus.ERROR);
    const replay = await client.replay(sid);
    assert.equal(replay.turns[0]!.error?.message, "Error: tool crashed");
    assert.deepEqual((await client.allMessages(sid)).map((m) => firstText(m.message)), ["try", "step one"]);
  });

  test("a cancelled stream ends the turn as ERROR and frees the session", async () => {
    const sid = uniqueId("node-cancel");
    await client.start(sid);
    const turn = await client.run(sid, "hello");
    await turn.append([textMessage("assistant", "half an answer")]);
    turn.cancel();
    let status = SessionStatus.RUNNING;
    for (let i = 0; i < 100 && status !== SessionStatus.ERROR; i++) {
      status = (await client.get(sid)).status;
      if (status !== SessionStatus.ERROR) await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(status, SessionStatus.ERROR);
    assert.equal((await client.chat(sid, "again")).text, "echo: again");
  });
});

describe("bundles", () => {
  test("export to a file, import it back", async () => {
    const a = uniqueId("node-exp-a");
    const b = uniqueId("node-exp-b");
    await client.start(a, { title: "A" });
    await client.start(b, { title: "B" });
    await client.chat(a, "alpha");
    await client.chat(b, "beta");
    await client.chat(b, "gamma");
    const before = await client.allMessages(b);

    const dir = await mkdtemp(join(tmpdir(), "sessiond-node-"));
    try {
      const path = join(dir, "bundle.tar.gz");
      const progress: bigint[] = [];
      const manifest = await client.exportToFile(path, { sessionIds: [a, b] }, (done) => progress.push(done));
      assert.equal(manifest.sessionCount, 2n);
      assert.equal(manifest.messageCount, 6n);
      assert.equal(manifest.turnCount, 3n);
      assert.ok(progress.length > 0);

      // A tar.gz whose first member is manifest.json, as the manifest says.
      const bytes = await readFile(path);
      assert.deepEqual([...bytes.subarray(0, 2)], [0x1f, 0x8b]);
      const tar = gunzipSync(bytes);
      const name = tar.subarray(0, 100).toString("utf8").replace(/\0.*$/s, "");
      assert.equal(name, "manifest.json");
      const size = parseInt(tar.subarray(124, 136).toString("utf8").replace(/\0.*$/s, "").trim(), 8);
      assert.equal(tar.subarray(512, 512 + size).toString("utf8"), manifest.manifestJson);

      // Import: into a tenant where the sessions are gone, then a conflict.
      await client.delete(a);
      await client.delete(b);
      const imported = await client.importFromFile(path);
      assert.deepEqual([...imported.importedSessionIds].sort(), [a, b].sort());
      assert.equal(imported.messageCount, 6n);
      const after = await client.allMessages(b);
      assert.equal(after.length, before.length);
      after.forEach((m, i) => assert.ok(equals(MessageSchema, m.message!, before[i]!.message!)));
      // The same bundle again is a retry of this import: nothing changes.
      const retried = await client.importFromFile(path);
      assert.deepEqual([...retried.importedSessionIds].sort(), [a, b].sort());
      // A session of the bundle that exists independently is a conflict.
      await client.delete(a);
      await client.start(a, { title: "another A" });
      await assert.rejects(client.importFromFile(path), (error: unknown) => {
        assert.ok(error instanceof SessionAlreadyExists);
        assert.equal(error.metadata["session_id"], a);
        return true;
      });
      const skipped = await client.importFromFile(path, { onConflict: ImportConflictPolicy.SKIP });
      assert.deepEqual(skipped.skippedSessionIds, [a]);
      assert.equal((await client.get(a)).title, "another A");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("a failed export leaves no file", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sessiond-node-"));
    try {
      const path = join(dir, "missing.tar.gz");
      await assert.rejects(client.exportToFile(path, { sessionIds: [uniqueId("node-none")] }), SessionNotFound);
      await assert.rejects(readFile(path), { code: "ENOENT" });
      await assert.rejects(readFile(`${path}.partial`), { code: "ENOENT" });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("the contract", () => {
  test("health answers per service name", async () => {
    assert.equal(await client.health(""), ServingStatus.SERVING);
    assert.equal(await client.health("sessiond.v1.SessionService"), ServingStatus.SERVING);
    await assert.rejects(client.health("no.such.Service"), (e: unknown) => e instanceof SessiondError && e.code === "NOT_FOUND");
  });

  test("the client has a method for every RPC", () => {
    const aliases: Record<string, string> = { import: "importBundle" };
    const missing = SessionService.methods
      .map((m) => aliases[m.localName] ?? m.localName)
      .filter((name) => typeof (client as unknown as Record<string, unknown>)[name] !== "function");
    assert.deepEqual(missing, []);
    assert.equal(SessionService.methods.length, 15);
  });
});
