/**
 * @sessiond/client — the Node.js / TypeScript client of sessiond.
 *
 * ```ts
 * import { SessiondClient } from "@sessiond/client";
 * const client = new SessiondClient("127.0.0.1:50051");
 * await client.start("trip", { title: "Trip planning" });
 * console.log((await client.chat("trip", "hello")).text); // "echo: hello"
 * ```
 */
export * from "./client.js";
export * from "./errors.js";
// The generated contract: every message, enum and the service descriptor.
export * from "./gen/sessiond/v1/content_pb.js";
export * from "./gen/sessiond/v1/session_pb.js";
export * from "./gen/sessiond/v1/session_service_pb.js";
export * from "./gen/sessiond/v1/turn_pb.js";
// protobuf-es runtime helpers, so callers need no second import.
export { create, equals, fromBinary, fromJson, toBinary, toJson, toJsonString } from "@bufbuild/protobuf";
export type { JsonValue, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
