// oort.v1.Value <-> plain JavaScript values, written from value.proto alone.
//
//   Value kind        JavaScript
//   null / unset      null
//   bool_value        boolean
//   int_value         bigint (int64: protobuf-es reads it as a bigint, so no precision is lost)
//   float_value       number
//   string_value      string
//   bytes_value       Uint8Array
//   timestamp_value   Timestamp (google.protobuf.Timestamp: seconds + nanos, nanosecond precision)
//   list_value        Plain[]
//   map_value         { [name]: Plain }
//
// A JavaScript number becomes FLOAT, a bigint BIGINT: the kinds are kept both ways.

import { create, isMessage, type MessageInitShape } from "@bufbuild/protobuf";
import { NullValue, TimestampSchema, timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";

import {
  ValueSchema,
  type Event,
  type Value,
} from "../../../../clients/typescript/src/gen/oort/v1/value_pb.js";

export type Plain =
  | null
  | boolean
  | bigint
  | number
  | string
  | Uint8Array
  | Timestamp
  | Plain[]
  | { [name: string]: Plain };

export function fromValue(v: Value | undefined): Plain {
  const k = v?.kind;
  switch (k?.case) {
    case undefined:
    case "nullValue":
      return null;
    case "boolValue":
    case "intValue":
    case "floatValue":
    case "stringValue":
    case "bytesValue":
    case "timestampValue":
      return k.value;
    case "listValue":
      return k.value.values.map(fromValue);
    case "mapValue":
      return Object.fromEntries(Object.entries(k.value.fields).map(([n, x]) => [n, fromValue(x)]));
  }
}

export function toValue(p: Plain): Value {
  const v = (kind: MessageInitShape<typeof ValueSchema>["kind"]) => create(ValueSchema, { kind });
  if (p === null) return v({ case: "nullValue", value: NullValue.NULL_VALUE });
  switch (typeof p) {
    case "boolean":
      return v({ case: "boolValue", value: p });
    case "bigint":
      return v({ case: "intValue", value: p });
    case "number":
      return v({ case: "floatValue", value: p });
    case "string":
      return v({ case: "stringValue", value: p });
  }
  if (p instanceof Uint8Array) return v({ case: "bytesValue", value: p });
  if (isMessage(p, TimestampSchema)) return v({ case: "timestampValue", value: p });
  if (Array.isArray(p)) return v({ case: "listValue", value: { values: p.map(toValue) } });
  const fields: Record<string, Value> = {};
  for (const [n, x] of Object.entries(p)) fields[n] = toValue(x);
  return v({ case: "mapValue", value: { fields } });
}

/** The SQL type name of a value, for error messages. */
export function typeName(v: Value | undefined): string {
  switch (v?.kind.case) {
    case undefined:
    case "nullValue":
      return "null";
    case "boolValue":
      return "boolean";
    case "intValue":
      return "bigint";
    case "floatValue":
      return "float";
    case "stringValue":
      return "string";
    case "bytesValue":
      return "bytea";
    case "timestampValue":
      return "datetime";
    case "listValue":
      return "array";
    case "mapValue":
      return "struct";
  }
}

/**
 * A plain value as JSON: a BIGINT as a number while it is exact, otherwise as
 * a string; bytes as base64; a timestamp as RFC 3339 (UTC, nanoseconds kept);
 * a non-finite float as a string.
 */
export function toJson(p: Plain): unknown {
  if (p === null || typeof p === "boolean" || typeof p === "string") return p;
  if (typeof p === "bigint") return Number.isSafeInteger(Number(p)) ? Number(p) : p.toString();
  if (typeof p === "number") return Number.isFinite(p) ? p : String(p);
  if (p instanceof Uint8Array) return Buffer.from(p).toString("base64");
  if (isMessage(p, TimestampSchema)) return rfc3339(p);
  if (Array.isArray(p)) return p.map(toJson);
  return Object.fromEntries(Object.entries(p).map(([n, x]) => [n, toJson(x)]));
}

function rfc3339(t: Timestamp): string {
  const seconds = timestampDate(create(TimestampSchema, { seconds: t.seconds })).toISOString(); // ...T..:..:..000Z
  const nanos = t.nanos ? "." + String(t.nanos).padStart(9, "0").replace(/0+$/, "") : "";
  return seconds.replace(/\.000Z$/, nanos + "Z");
}

/** An event's fields as a JSON object. */
export function eventJson(e: Event): Record<string, unknown> {
  return Object.fromEntries(Object.entries(e.fields).map(([n, v]) => [n, toJson(fromValue(v))]));
}
