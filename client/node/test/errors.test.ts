/** Typed errors decoded from `grpc-status-details-bin`, without a server. */
import assert from "node:assert/strict";
import { test } from "node:test";

import { create, toBinary } from "@bufbuild/protobuf";
import { anyPack } from "@bufbuild/protobuf/wkt";
import { Metadata, status } from "@grpc/grpc-js";

import {
  Aborted,
  decodeErrorInfo,
  errorFromStatus,
  fromServiceError,
  InternalError,
  SessionBusy,
  SessiondError,
  STATUS_DETAILS_KEY,
} from "../src/errors.js";
import { ErrorInfoSchema } from "../src/gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "../src/gen/google/rpc/status_pb.js";

function details(reason: string, domain: string, metadata: Record<string, string>): Buffer {
  const info = create(ErrorInfoSchema, { reason, domain, metadata });
  const packed = anyPack(ErrorInfoSchema, info);
  const rpcStatus = create(StatusSchema, { code: status.ABORTED, message: "m", details: [packed] });
  return Buffer.from(toBinary(StatusSchema, rpcStatus));
}

function failure(code: number, trailer?: Buffer): Error & { code: number; details: string; metadata: Metadata } {
  const metadata = new Metadata();
  if (trailer) metadata.set(STATUS_DETAILS_KEY, trailer);
  return Object.assign(new Error("failed"), { code, details: "the message", metadata });
}

test("the reason picks the class; metadata comes along", () => {
  const trailer = details("SESSION_BUSY", "sessiond", { lease_expire_time: "2030-01-01T00:00:00Z" });
  const error = fromServiceError(failure(status.ABORTED, trailer));
  assert.ok(error instanceof SessionBusy && error instanceof Aborted && error instanceof SessiondError);
  assert.equal(error.message, "the message");
  assert.equal(error.leaseExpireTime, "2030-01-01T00:00:00Z");
  assert.equal(error.grpcCode, status.ABORTED);
});

test("an unknown reason falls back to the class of its code and keeps the reason", () => {
  const error = fromServiceError(failure(status.ABORTED, details("SOMETHING_NEW", "sessiond", {})));
  assert.equal(error.constructor, Aborted);
  assert.equal(error.reason, "SOMETHING_NEW");
});

test("other domains, malformed details and no details fall back to the code", () => {
  assert.equal(decodeErrorInfo(details("SESSION_BUSY", "example.com", {})), undefined);
  assert.equal(decodeErrorInfo(Buffer.from([0xff, 0xff, 0xff])), undefined);
  assert.equal(fromServiceError(failure(status.ABORTED, Buffer.from("junk"))).constructor, Aborted);
  const transport = fromServiceError(failure(status.UNIMPLEMENTED));
  assert.equal(transport.constructor, InternalError);
  assert.equal(transport.code, "UNIMPLEMENTED");
  assert.equal(errorFromStatus("NOT_FOUND", "SESSION_NOT_FOUND", "x").name, "SessionNotFound");
});
