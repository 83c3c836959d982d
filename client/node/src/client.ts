/**
 * The Node.js client of sessiond: one async method per RPC of
 * `sessiond.v1.SessionService`, typed errors, and `run()` for the
 * bidirectional `Run` stream. Mirrors the Python `sessiond.client.aio`.
 *
 * Transport is @grpc/grpc-js; messages are the protobuf-es types generated
 * from `protos/` (src/gen). The gRPC method paths, streaming kinds and
 * (de)serializers all come from the generated service descriptor, so the
 * client cannot disagree with the contract it was generated from.
 */
import { once } from "node:events";
import { createReadStream } from "node:fs";
import { open, rename, rm } from "node:fs/promises";

import {
  create,
  fromBinary,
  toBinary,
  type DescMessage,
  type DescMethod,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";

import { fromServiceError, SessiondError, type GrpcFailure } from "./errors.js";
import {
  Health,
  HealthCheckResponse_ServingStatus,
} from "./gen/grpc/health/v1/health_pb.js";
import {
  MessageSchema,
  Role,
  type Message,
  type SessionMessage,
} from "./gen/sessiond/v1/content_pb.js";
import { UsageSchema, type Session } from "./gen/sessiond/v1/session_pb.js";
import {
  ArchiveRequestSchema,
  ChatRequestSchema,
  DeleteRequestSchema,
  ExportRequestSchema,
  ImportOptionsSchema,
  ImportRequestSchema,
  ListMessagesRequestSchema,
  ListPendingReviewsRequestSchema,
  ListRequestSchema,
  ReplayRequestSchema,
  ResolveReviewRequestSchema,
  ResumeRequestSchema,
  RunAppendSchema,
  RunFailSchema,
  RunFinishSchema,
  RunHibernateSchema,
  RunOpenSchema,
  RunRequestSchema,
  SessionService,
  StartRequestSchema,
  TurnUpdateSchema,
  UnarchiveRequestSchema,
  type ChatResponse,
  type ExportManifest,
  type ExportResponse,
  type ImportResponse,
  type ListMessagesResponse,
  type ListPendingReviewsResponse,
  type ListResponse,
  type ReplayResponse,
  type ResolveReviewResponse,
  type ResumeResponse,
  type RunAppended,
  type RunEnded,
  type RunRequest,
  type RunResponse,
  type RunStarted,
  type StartResponse,
  type TurnUpdate,
} from "./gen/sessiond/v1/session_service_pb.js";
import {
  SnapshotSchema,
  type ReviewRequestSchema,
  type TurnEventSchema,
} from "./gen/sessiond/v1/turn_pb.js";

/** A message or its fields, as accepted by `create()`. */
export type Init<Desc extends DescMessage> = MessageInitShape<Desc>;

/** The fields of a request message as a plain object, less the keys `K` (set by the method). */
export type Fields<Desc extends DescMessage, K extends string = never> = Omit<
  Exclude<MessageInitShape<Desc>, MessageShape<Desc>>,
  "$typeName" | K
>;

/** Options of {@link SessiondClient}. */
export interface ClientOptions {
  /** Deadline of unary calls in milliseconds; `null` for none. Default 30 s. */
  timeoutMs?: number | null;
  /** Deadline of a whole `Run` turn in milliseconds; default none (turns may be long). */
  runTimeoutMs?: number | null;
  /** Channel credentials; default insecure (plaintext). */
  credentials?: grpc.ChannelCredentials;
  /** Extra grpc-js channel options. */
  channelOptions?: grpc.ChannelOptions;
  /** Metadata sent with every call (for example an authorization header). */
  metadata?: Record<string, string>;
}

/** A message with one text block. */
export function textMessage(role: "user" | "assistant", text: string): Message {
  return create(MessageSchema, {
    role: role === "user" ? Role.USER : Role.ASSISTANT,
    content: [{ block: { case: "text", value: text } }],
  });
}

/** Extra changes of a turn update besides its messages (as in the Python client). */
export interface UpdateFields {
  /** The new agent state; JSON-serialized into `state_json`. */
  state?: unknown;
  /** Timeline events to record. */
  events?: Init<typeof TurnEventSchema>[];
  /** Token usage `[input, output]` to add (total = input + output). */
  usage?: [number, number];
  /** Any other field of `TurnUpdate` (for example `redactions`), as is. */
  update?: Fields<typeof TurnUpdateSchema>;
}

/** Options of {@link RunTurn.hibernate}. */
export interface HibernateFields extends UpdateFields {
  /** Runtime state handed back on resume. */
  snapshot?: Uint8Array | string;
  /** MIME type of the snapshot; default "application/json". */
  contentType?: string;
  /** Tool calls that need a human decision before the turn can resume. */
  reviews?: Init<typeof ReviewRequestSchema>[];
}

type MessageInput = Message | Init<typeof MessageSchema>;

function makeUpdate(messages: Iterable<MessageInput>, fields: UpdateFields = {}): TurnUpdate {
  const update = create(TurnUpdateSchema, {
    ...fields.update,
    messages: [...messages].map((m) => create(MessageSchema, m)),
    events: fields.events ?? [],
  });
  if (fields.state !== undefined) update.stateJson = JSON.stringify(fields.state);
  if (fields.usage !== undefined) {
    const [input, output] = fields.usage;
    update.usage = create(UsageSchema, {
      inputTokens: BigInt(input),
      outputTokens: BigInt(output),
      totalTokens: BigInt(input + output),
    });
  }
  return update;
}

type Method<I extends DescMessage, O extends DescMessage> = DescMethod & { input: I; output: O };

function pathOf(method: DescMethod): string {
  return `/${method.parent.typeName}/${method.name}`;
}

function serializer<I extends DescMessage>(schema: I): (value: MessageShape<I>) => Buffer {
  return (value) => {
    const bytes = toBinary(schema, value);
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
}

function deserializer<O extends DescMessage>(schema: O): (bytes: Buffer) => MessageShape<O> {
  return (bytes) => fromBinary(schema, bytes);
}

/** A queue between grpc-js stream events and `await read()`. */
class Inbox<T> {
  private readonly items: T[] = [];
  private readonly waiters: Array<{
    resolve: (value: T | undefined) => void;
    reject: (error: Error) => void;
  }> = [];
  private failure: Error | undefined;
  private closed = false;

  push(item: T): void {
    const waiter = this.waiters.shift();
    if (waiter) waiter.resolve(item);
    else this.items.push(item);
  }

  fail(error: Error): void {
    if (this.closed) return;
    this.failure = error;
    this.closed = true;
    for (const waiter of this.waiters.splice(0)) waiter.reject(error);
  }

  end(): void {
    if (this.closed) return;
    this.closed = true;
    for (const waiter of this.waiters.splice(0)) waiter.resolve(undefined);
  }

  /** The next item; `undefined` at the end of the stream; rejects with the stream's error. */
  read(): Promise<T | undefined> {
    if (this.items.length > 0) return Promise.resolve(this.items.shift());
    if (this.failure) return Promise.reject(this.failure);
    if (this.closed) return Promise.resolve(undefined);
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }
}

/** A connection to a sessiond server. */
export class SessiondClient {
  /** The underlying grpc-js client (for channel state, `waitForReady`, interceptors). */
  readonly grpc: grpc.Client;
  /** Default deadline of unary calls, in milliseconds (`null`: none). */
  readonly timeoutMs: number | null;
  private readonly runTimeoutMs: number | null;
  private readonly metadata: Record<string, string>;

  /**
   * @param target `host:port` of the server.
   * @param options deadlines, credentials, channel options and call metadata.
   */
  constructor(target: string, options: ClientOptions = {}) {
    this.grpc = new grpc.Client(target, options.credentials ?? grpc.credentials.createInsecure(), {
      "grpc.max_receive_message_length": 64 * 1024 * 1024,
      "grpc.max_send_message_length": 64 * 1024 * 1024,
      "grpc.keepalive_time_ms": 60_000,
      ...options.channelOptions,
    });
    this.timeoutMs = options.timeoutMs === undefined ? 30_000 : options.timeoutMs;
    this.runTimeoutMs = options.runTimeoutMs ?? null;
    this.metadata = options.metadata ?? {};
  }

  /** Closes the channel. */
  close(): void {
    this.grpc.close();
  }

  /** Resolves once the channel is connected (or rejects after `timeoutMs`). */
  waitForReady(timeoutMs = 10_000): Promise<void> {
    return new Promise((resolve, reject) =>
      this.grpc.waitForReady(Date.now() + timeoutMs, (error) => (error ? reject(error) : resolve())),
    );
  }

  private callMetadata(): grpc.Metadata {
    const metadata = new grpc.Metadata();
    for (const [key, value] of Object.entries(this.metadata)) metadata.set(key, value);
    return metadata;
  }

  private callOptions(timeoutMs: number | null): grpc.CallOptions {
    return timeoutMs === null ? {} : { deadline: Date.now() + timeoutMs };
  }

  /** One unary call of any method, with typed errors. */
  unary<I extends DescMessage, O extends DescMessage>(
    method: Method<I, O>,
    request: Init<I>,
  ): Promise<MessageShape<O>> {
    const message = create(method.input, request);
    return new Promise((resolve, reject) => {
      this.grpc.makeUnaryRequest(
        pathOf(method),
        serializer(method.input),
        deserializer(method.output),
        message,
        this.callMetadata(),
        this.callOptions(this.timeoutMs),
        (error, response) => {
          if (error) reject(fromServiceError(error));
          else resolve(response as MessageShape<O>);
        },
      );
    });
  }

  // -- sessions ---------------------------------------------------------------

  /** Starts a session (fields of `StartRequest`). */
  start(
    sessionId = "",
    fields: Fields<typeof StartRequestSchema, "sessionId"> = {},
  ): Promise<StartResponse> {
    return this.unary(SessionService.method.start, { ...fields, sessionId });
  }

  /** Returns the session. */
  async get(sessionId: string): Promise<Session> {
    const response = await this.unary(SessionService.method.get, { sessionId });
    return response.session!;
  }

  /** One page of sessions. */
  list(fields: Fields<typeof ListRequestSchema> = {}): Promise<ListResponse> {
    return this.unary(SessionService.method.list, fields);
  }

  /** One page of an agent's messages. */
  listMessages(
    sessionId: string,
    fields: Fields<typeof ListMessagesRequestSchema, "sessionId"> = {},
  ): Promise<ListMessagesResponse> {
    return this.unary(SessionService.method.listMessages, { ...fields, sessionId });
  }

  /** Every message of an agent (follows page tokens). */
  async allMessages(sessionId: string, agentId = ""): Promise<SessionMessage[]> {
    const found: SessionMessage[] = [];
    let pageToken = "";
    do {
      const page = await this.listMessages(sessionId, { agentId, pageSize: 1000, pageToken });
      found.push(...page.messages);
      pageToken = page.nextPageToken;
    } while (pageToken);
    return found;
  }

  /** One server-engine turn: text in, text out. */
  chat(
    sessionId: string,
    text: string,
    fields: Fields<typeof ChatRequestSchema, "sessionId" | "text"> = {},
  ): Promise<ChatResponse> {
    return this.unary(SessionService.method.chat, { ...fields, sessionId, text });
  }

  /** Continues a hibernated server-engine turn (client turns: `run(..., { resume: true })`). */
  resume(
    sessionId: string,
    fields: Fields<typeof ResumeRequestSchema, "sessionId"> = {},
  ): Promise<ResumeResponse> {
    return this.unary(SessionService.method.resume, { ...fields, sessionId });
  }

  /** One page of pending reviews, of one session or the whole tenant. */
  listPendingReviews(
    fields: Fields<typeof ListPendingReviewsRequestSchema> = {},
  ): Promise<ListPendingReviewsResponse> {
    return this.unary(SessionService.method.listPendingReviews, fields);
  }

  /** Records a review decision. */
  resolveReview(
    reviewId: string,
    fields: Fields<typeof ResolveReviewRequestSchema, "reviewId"> = {},
  ): Promise<ResolveReviewResponse> {
    return this.unary(SessionService.method.resolveReview, { ...fields, reviewId });
  }

  /** Archives a session; returns it. */
  async archive(
    sessionId: string,
    fields: Fields<typeof ArchiveRequestSchema, "sessionId"> = {},
  ): Promise<Session> {
    return (await this.unary(SessionService.method.archive, { ...fields, sessionId })).session!;
  }

  /** Unarchives a session; returns it. */
  async unarchive(
    sessionId: string,
    fields: Fields<typeof UnarchiveRequestSchema, "sessionId"> = {},
  ): Promise<Session> {
    return (await this.unary(SessionService.method.unarchive, { ...fields, sessionId })).session!;
  }

  /** Deletes a session and everything under it. */
  async delete(
    sessionId: string,
    fields: Fields<typeof DeleteRequestSchema, "sessionId"> = {},
  ): Promise<void> {
    await this.unary(SessionService.method.delete, { ...fields, sessionId });
  }

  /** One page of the session's timeline. */
  replay(
    sessionId: string,
    fields: Fields<typeof ReplayRequestSchema, "sessionId"> = {},
  ): Promise<ReplayResponse> {
    return this.unary(SessionService.method.replay, { ...fields, sessionId });
  }

  // -- bundles ------------------------------------------------------------------

  /** Streams an export: progress, tar.gz chunks, then the manifest (last). */
  async *export(fields: Fields<typeof ExportRequestSchema> = {}): AsyncGenerator<ExportResponse> {
    const method = SessionService.method.export;
    const call = this.grpc.makeServerStreamRequest(
      pathOf(method),
      serializer(method.input),
      deserializer(method.output),
      create(method.input, fields),
      this.callMetadata(),
      {},
    );
    try {
      for await (const response of call) yield response as ExportResponse;
    } catch (error) {
      throw fromServiceError(error as GrpcFailure);
    } finally {
      call.cancel();
    }
  }

  /**
   * Exports to a tar.gz file and returns the bundle's manifest. The file is
   * written next to `path` and renamed into place only when the export
   * completed, so a failed export never leaves a truncated bundle.
   */
  async exportToFile(
    path: string,
    fields: Fields<typeof ExportRequestSchema, "destinationPrefix"> = {},
    onProgress?: (done: bigint, total: bigint) => void,
  ): Promise<ExportManifest> {
    const partial = `${path}.partial`;
    const file = await open(partial, "w");
    let manifest: ExportManifest | undefined;
    try {
      for await (const response of this.export(fields)) {
        const event = response.event;
        if (event.case === "chunk") await file.write(event.value);
        else if (event.case === "progress") onProgress?.(event.value.sessionsDone, event.value.sessionsTotal);
        else if (event.case === "manifest") manifest = event.value;
      }
      await file.sync();
    } catch (error) {
      await file.close();
      await rm(partial, { force: true });
      throw error;
    }
    await file.close();
    if (!manifest) {
      await rm(partial, { force: true });
      throw new SessiondError("the export stream ended without a manifest");
    }
    await rename(partial, path);
    return manifest;
  }

  /** Streams a bundle in (chunks of a tar.gz made by `export`). */
  async importBundle(
    chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    options: Fields<typeof ImportOptionsSchema> = {},
  ): Promise<ImportResponse> {
    const method = SessionService.method.import;
    let settle!: { resolve: (r: ImportResponse) => void; reject: (e: Error) => void };
    const result = new Promise<ImportResponse>((resolve, reject) => (settle = { resolve, reject }));
    const call = this.grpc.makeClientStreamRequest(
      pathOf(method),
      serializer(method.input),
      deserializer(method.output),
      this.callMetadata(),
      {},
      (error, response) => {
        if (error) settle.reject(fromServiceError(error));
        else settle.resolve(response as ImportResponse);
      },
    );
    const write = async (request: MessageShape<typeof ImportRequestSchema>) => {
      if (!call.write(request)) await Promise.race([once(call, "drain"), result]);
    };
    try {
      await write(create(ImportRequestSchema, { item: { case: "options", value: options } }));
      for await (const chunk of chunks) {
        await write(create(ImportRequestSchema, { item: { case: "chunk", value: chunk } }));
      }
      call.end();
    } catch (error) {
      call.cancel();
      // The call's own status explains a failed write best.
      await result.catch(() => undefined);
      throw error instanceof SessiondError ? error : fromServiceError(error as GrpcFailure);
    }
    return result;
  }

  /** Imports a tar.gz bundle file. */
  importFromFile(path: string, options: Fields<typeof ImportOptionsSchema> = {}): Promise<ImportResponse> {
    return this.importBundle(createReadStream(path, { highWaterMark: 256 * 1024 }), options);
  }

  // -- turns ----------------------------------------------------------------------

  /**
   * Opens a turn driven by this caller's runtime: claims the session and
   * restores its context (`turn.started`, `turn.history`). Then `append`, and
   * end with `finish`, `hibernate` or `fail`. Rejects with `SessionBusy` when
   * another runner holds the session. Prefer {@link withRun}, which always
   * ends the turn.
   */
  async run(
    sessionId: string,
    input?: string | MessageInput,
    openFields: Fields<typeof RunOpenSchema, "sessionId" | "input"> = {},
  ): Promise<RunTurn> {
    const open = create(RunOpenSchema, { ...openFields, sessionId });
    if (input !== undefined) {
      open.input = typeof input === "string" ? textMessage("user", input) : create(MessageSchema, input);
    }
    const method = SessionService.method.run;
    const call = this.grpc.makeBidiStreamRequest(
      pathOf(method),
      serializer(method.input),
      deserializer(method.output),
      this.callMetadata(),
      this.callOptions(this.runTimeoutMs),
    );
    const turn = new RunTurn(call);
    try {
      await turn.open(open);
    } catch (error) {
      turn.cancel();
      throw error;
    }
    return turn;
  }

  /**
   * Runs `body` inside a turn, like the Python client's `async with
   * client.run(...)`: when `body` returns without ending the turn it is
   * finished; when it throws (anything but a SessiondError) the turn is
   * failed with the error's text. Returns what `body` returns.
   */
  async withRun<T>(
    sessionId: string,
    input: string | MessageInput | undefined,
    body: (turn: RunTurn) => Promise<T>,
    openFields: Fields<typeof RunOpenSchema, "sessionId" | "input"> = {},
  ): Promise<T> {
    const turn = await this.run(sessionId, input, openFields);
    try {
      const result = await body(turn);
      if (!turn.ended) await turn.finish();
      return result;
    } catch (error) {
      if (!turn.ended && !(error instanceof SessiondError)) {
        const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
        await turn.fail(text.slice(0, 500)).catch(() => undefined);
      }
      throw error;
    } finally {
      turn.cancel();
    }
  }

  // -- health -----------------------------------------------------------------------

  /**
   * The serving status of a service name (`grpc.health.v1.Health/Check`):
   * "" is the process (liveness), "sessiond.v1.SessionService" follows the
   * store (readiness). An unknown name rejects with NOT_FOUND.
   */
  async health(service = ""): Promise<HealthCheckResponse_ServingStatus> {
    return (await this.unary(Health.method.check, { service })).status;
  }
}

export { HealthCheckResponse_ServingStatus as ServingStatus };

/** One `Run` stream (see {@link SessiondClient.run}). */
export class RunTurn {
  /** The restored context: session with lease, turn, agent state, snapshot and reviews on resume. */
  started: RunStarted | undefined;
  /** The agent's history before this turn's input, oldest first (the input is `started.input`). */
  readonly history: SessionMessage[] = [];
  /** The outcome, once the turn ended. */
  ended: RunEnded | undefined;

  private readonly inbox = new Inbox<RunResponse>();
  private done = false;

  /** @internal */
  constructor(private readonly call: grpc.ClientDuplexStream<RunRequest, RunResponse>) {
    call.on("data", (response: RunResponse) => this.inbox.push(response));
    call.on("error", (error: GrpcFailure) => {
      this.done = true;
      this.inbox.fail(fromServiceError(error));
    });
    call.on("end", () => {
      this.done = true;
      this.inbox.end();
    });
  }

  private async read(): Promise<RunResponse> {
    const response = await this.inbox.read();
    if (response === undefined) {
      throw new SessiondError("the server closed the Run stream unexpectedly");
    }
    return response;
  }

  private async send(action: RunRequest["action"]): Promise<RunResponse> {
    if (this.ended) throw new SessiondError("the turn has ended");
    if (!this.done) this.call.write(create(RunRequestSchema, { action }));
    return this.read();
  }

  private end(ended: RunEnded): RunEnded {
    this.ended = ended;
    this.call.end();
    return ended;
  }

  /** @internal Sends `open`, then reads `started` and the history chunks. */
  async open(open: MessageShape<typeof RunOpenSchema>): Promise<void> {
    const first = await this.send({ case: "open", value: open });
    if (first.event.case === "ended") {
      this.end(first.event.value); // an already-ended request_id, or AFTER_PROMPT
      return;
    }
    if (first.event.case !== "started") throw new SessiondError(`unexpected ${first.event.case} before started`);
    this.started = first.event.value;
    while (BigInt(this.history.length) < this.started.historyMessageCount) {
      const chunk = await this.read();
      if (chunk.event.case === "ended") {
        this.end(chunk.event.value);
        return;
      }
      if (chunk.event.case !== "history") throw new SessiondError(`unexpected ${chunk.event.case} in history`);
      this.history.push(...chunk.event.value.messages);
    }
  }

  private async ending(action: RunRequest["action"]): Promise<RunEnded> {
    const response = await this.send(action);
    if (response.event.case !== "ended") throw new SessiondError(`expected ended, got ${response.event.case}`);
    return this.end(response.event.value);
  }

  /** Appends messages (and state / events / usage); resolves once committed. */
  async append(messages: Iterable<MessageInput> = [], fields: UpdateFields = {}): Promise<RunAppended> {
    const response = await this.send({
      case: "append",
      value: create(RunAppendSchema, { update: makeUpdate(messages, fields) }),
    });
    if (response.event.case !== "appended") throw new SessiondError(`expected appended, got ${response.event.case}`);
    return response.event.value;
  }

  /** Ends the turn as FINISHED. */
  finish(messages: Iterable<MessageInput> = [], fields: UpdateFields = {}): Promise<RunEnded> {
    return this.ending({
      case: "finish",
      value: create(RunFinishSchema, { update: makeUpdate(messages, fields) }),
    });
  }

  /** Ends the turn as HIBERNATED (WAITING when it asks for reviews). */
  hibernate(messages: Iterable<MessageInput> = [], fields: HibernateFields = {}): Promise<RunEnded> {
    const { snapshot, contentType, reviews, ...update } = fields;
    const value = create(RunHibernateSchema, {
      update: makeUpdate(messages, update),
      reviews: reviews ?? [],
    });
    if (snapshot !== undefined) {
      value.snapshot = create(SnapshotSchema, {
        data: typeof snapshot === "string" ? new TextEncoder().encode(snapshot) : snapshot,
        contentType: contentType ?? "application/json",
      });
    }
    return this.ending({ case: "hibernate", value });
  }

  /** Ends the turn as ERROR (acknowledged appends stay). */
  fail(errorMessage: string): Promise<RunEnded> {
    return this.ending({ case: "fail", value: create(RunFailSchema, { errorMessage }) });
  }

  /** Cancels the stream; a turn not ended yet ends as ERROR on the server. */
  cancel(): void {
    if (!this.done) this.call.cancel();
    this.done = true;
  }
}
