//! Payloads decoded and encoded by a message descriptor, through JSON: the
//! `.proto` field names, every field (defaults too), 64-bit integers as
//! numbers, enums by name (a number is accepted too), bytes as base64 and
//! `google.protobuf.Timestamp` as RFC 3339 text, as proto3's JSON mapping.

use prost::Message as _;
use prost_reflect::{DeserializeOptions, DynamicMessage, MessageDescriptor, SerializeOptions};

use crate::SchemaError;

/// The fields of `bytes`, a `message`, as a JSON object.
pub fn decode(message: &MessageDescriptor, bytes: &[u8]) -> Result<serde_json::Value, SchemaError> {
    let decoded = DynamicMessage::decode(message.clone(), bytes)
        .map_err(|e| SchemaError::Payload(format!("not a {}: {e}", message.full_name())))?;
    let options =
        SerializeOptions::new().use_proto_field_name(true).stringify_64_bit_integers(false).skip_default_fields(false);
    decoded
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|e| SchemaError::Payload(format!("{}: {e}", message.full_name())))
}

/// `json` (an object whose keys are field names) as a `message`. Keys that
/// are not fields of the message are ignored.
pub fn encode(message: &MessageDescriptor, json: &serde_json::Value) -> Result<Vec<u8>, SchemaError> {
    let options = DeserializeOptions::new().deny_unknown_fields(false);
    let dynamic = DynamicMessage::deserialize_with_options(message.clone(), json, &options)
        .map_err(|e| SchemaError::Payload(format!("cannot encode as {}: {e}", message.full_name())))?;
    Ok(dynamic.encode_to_vec())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ProtoSchema;

    #[test]
    fn rows_round_trip_through_a_message() {
        let schema = ProtoSchema::compile(
            "reading",
            r#"syntax = "proto3"; import "google/protobuf/timestamp.proto";
               enum Unit { C = 0; F = 1; }
               message Reading { string device = 1; int64 n = 2; double t = 3; Unit unit = 4; bytes raw = 5;
                                 repeated int32 hist = 6; google.protobuf.Timestamp at = 7; }"#,
        )
        .unwrap();
        let message = schema.message("Reading").unwrap();
        let row = json!({"device": "d1", "n": 9_007_199_254_740_993_i64, "t": 21.5, "unit": "F", "raw": "AQI=",
                         "hist": [1, 2], "at": "2026-12-07T10:00:00Z", "extra": "ignored"});
        let bytes = encode(&message, &row).unwrap();
        let back = decode(&message, &bytes).unwrap();
        let mut expected = row.clone();
        expected.as_object_mut().unwrap().remove("extra");
        assert_eq!(back, expected);
        let defaults = decode(&message, &[]).unwrap();
        assert_eq!(defaults["n"], json!(0));
        assert_eq!(defaults["unit"], json!("C"));
        assert!(decode(&message, &[0xff, 0xff]).unwrap_err().to_string().contains("not a Reading"));
        let wrong = encode(&message, &json!({"n": "many"})).unwrap_err().to_string();
        assert!(wrong.contains("cannot encode as Reading"), "{wrong}");
    }
}
