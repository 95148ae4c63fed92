//! Tests of the parent module.

use super::*;

const EXAMPLE: &str = r#"{"id":"rule1","sql":"SELECT * FROM demo","actions":[{"log":{}},{"mqtt":{"server":"tcp://127.0.0.1:1883","topic":"out"}}],"options":{"isEventTime":false,"lateTolerance":1000,"bufferLength":1024,"sendMetaToSink":false,"qos":0,"checkpointInterval":300000,"restartStrategy":{"attempts":3,"delay":1000,"multiplier":2,"maxDelay":30000,"jitterFactor":0.1}},"triggered":true}"#;

fn string_prop(action: &Action, key: &str) -> Option<String> {
    match action.props.as_ref()?.fields.get(key)?.kind.as_ref()? {
        Kind::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

#[test]
fn parses_the_ekuiper_example() {
    let rule = rule_from_json(EXAMPLE, None).expect("example parses");
    assert_eq!(rule.id, "rule1");
    assert_eq!(rule.sql, "SELECT * FROM demo");
    assert_eq!(rule.triggered, Some(true));
    assert_eq!(rule.actions.len(), 2);
    assert_eq!(rule.actions[0].r#type, "log");
    assert!(rule.actions[0].props.as_ref().is_some_and(|p| p.fields.is_empty()));
    assert_eq!(rule.actions[1].r#type, "mqtt");
    assert_eq!(string_prop(&rule.actions[1], "server").as_deref(), Some("tcp://127.0.0.1:1883"));
    assert_eq!(string_prop(&rule.actions[1], "topic").as_deref(), Some("out"));
    let options = rule.options.expect("options");
    assert_eq!(
        options,
        RuleOptions {
            is_event_time: false,
            late_tolerance_ms: Some(1000),
            buffer_length: Some(1024),
            send_meta_to_sink: false,
            qos: 0,
            checkpoint_interval_ms: Some(300_000),
            restart_strategy: Some(RestartStrategy {
                attempts: 3,
                delay_ms: Some(1000),
                multiplier: Some(2.0),
                max_delay_ms: Some(30_000),
                jitter_factor: Some(0.1),
            }),
            buffer_full: BufferFull::Unspecified as i32,
            send_error: false,
            cron: String::new(),
            duration_ms: None,
            cron_datetime_range: Vec::new(),
            concurrency: None,
            debug: false,
            send_nil_field: false,
            log_filename: String::new(),
        }
    );
}

#[test]
fn name_tags_and_options_round_trip() {
    let text = r#"{"id":"r","name":"Hot devices","tags":["line1","alarm"],"sql":"SELECT 1 FROM s","actions":[{"log":{}}],"options":{"isEventTime":false,"sendMetaToSink":false,"qos":0,"sendError":true,"sendNilField":true,"logFilename":"hot.log"}}"#;
    let rule = rule_from_json(text, None).unwrap();
    assert_eq!(
        (rule.name.as_str(), rule.tags.as_slice()),
        ("Hot devices", &["line1".to_owned(), "alarm".to_owned()][..])
    );
    assert!(rule.options.as_ref().unwrap().send_error);
    assert!(rule.options.as_ref().unwrap().send_nil_field);
    assert_eq!(rule.options.as_ref().unwrap().log_filename, "hot.log");
    assert_eq!(rule_to_json(&rule), serde_json::from_str::<Value>(text).unwrap());
}

#[test]
fn example_round_trips_through_rule_to_json() {
    let rule = rule_from_json(EXAMPLE, None).expect("example parses");
    let expected: Value = serde_json::from_str(EXAMPLE).expect("valid JSON");
    assert_eq!(rule_to_json(&rule), expected);
}

#[test]
fn buffer_full_round_trips_and_refuses_other_words() {
    for word in ["drop", "block"] {
        let text = format!(
            r#"{{"id":"r","sql":"SELECT 1 FROM s","actions":[{{"log":{{}}}}],"options":{{"bufferFull":"{word}"}}}}"#
        );
        let rule = rule_from_json(&text, None).unwrap();
        assert_eq!(options_to_json(rule.options.as_ref().unwrap())["bufferFull"], json!(word));
    }
    let err = rule_from_json(r#"{"sql":"s","actions":[{"log":{}}],"options":{"bufferFull":"spill"}}"#, None)
        .expect_err("spill is not a choice");
    assert!(err.contains("unknown variant `spill`"), "{err}");
}

#[test]
fn minimal_rule_leaves_options_and_triggered_unset() {
    let rule = rule_from_json(r#"{"id":"r","sql":"SELECT 1 FROM s","actions":[{"log":{}}]}"#, None).unwrap();
    assert!(rule.options.is_none());
    assert!(rule.triggered.is_none());
}

#[test]
fn unknown_top_level_key_is_an_error_naming_it() {
    let err = rule_from_json(r#"{"id":"r","sql":"SELECT 1","actions":[{"log":{}}],"graph":{}}"#, None)
        .expect_err("graph is not supported");
    assert!(err.contains("unknown field `graph`"), "{err}");
    assert!(err.contains("expected one of"), "{err}");
}

#[test]
fn unknown_option_key_is_an_error_naming_it() {
    let err =
        rule_from_json(r#"{"id":"r","sql":"s","actions":[{"log":{}}],"options":{"enableRuleTracer":true}}"#, None)
            .expect_err("enableRuleTracer is not supported");
    assert!(err.contains("unknown field `enableRuleTracer`"), "{err}");
}

#[test]
fn action_with_two_sink_types_is_rejected() {
    let err = rule_from_json(r#"{"id":"r","sql":"s","actions":[{"log":{},"mqtt":{}}]}"#, None).unwrap_err();
    assert!(err.starts_with("actions[0]: expected exactly one sink type"), "{err}");
}

#[test]
fn action_that_is_not_an_object_is_rejected() {
    let err = rule_from_json(r#"{"id":"r","sql":"s","actions":["log"]}"#, None).unwrap_err();
    assert!(err.contains("actions[0]") && err.contains("found a string"), "{err}");
}

#[test]
fn action_props_must_be_an_object() {
    let err = rule_from_json(r#"{"id":"r","sql":"s","actions":[{"log":{}},{"mqtt":"tcp://x"}]}"#, None).unwrap_err();
    assert!(err.starts_with("actions[1]: the properties of sink \"mqtt\""), "{err}");
}

#[test]
fn empty_actions_are_rejected() {
    let err = rule_from_json(r#"{"id":"r","sql":"s","actions":[]}"#, None).unwrap_err();
    assert!(err.contains("at least one action"), "{err}");
}

#[test]
fn missing_sql_is_reported() {
    let err = rule_from_json(r#"{"id":"r","actions":[{"log":{}}]}"#, None).unwrap_err();
    assert!(err.contains("missing field `sql`"), "{err}");
}

#[test]
fn malformed_json_reports_line_and_column() {
    let err = rule_from_json("{\"id\": \"r\",\n  \"sql\": }", None).unwrap_err();
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn id_from_command_line_fills_in_or_must_agree() {
    let no_id = r#"{"sql":"s","actions":[{"log":{}}]}"#;
    assert_eq!(rule_from_json(no_id, Some("cli")).unwrap().id, "cli");
    assert!(rule_from_json(no_id, None).unwrap_err().contains("no id"));
    let with_id = r#"{"id":"a","sql":"s","actions":[{"log":{}}]}"#;
    assert_eq!(rule_from_json(with_id, Some("a")).unwrap().id, "a");
    assert!(rule_from_json(with_id, Some("b")).unwrap_err().contains("differs"));
}

#[test]
fn durations_accept_strings_and_reject_negatives() {
    let rule = rule_from_json(
            r#"{"id":"r","sql":"s","actions":[{"log":{}}],"options":{"lateTolerance":"1.5s","checkpointInterval":"5m","restartStrategy":{"delay":"250ms","maxDelay":"1m30s"}}}"#,
            None,
        )
        .unwrap();
    let options = rule.options.unwrap();
    assert_eq!(options.late_tolerance_ms, Some(1500));
    assert_eq!(options.checkpoint_interval_ms, Some(300_000));
    let restart = options.restart_strategy.unwrap();
    assert_eq!((restart.delay_ms, restart.max_delay_ms), (Some(250), Some(90_000)));
    let err = rule_from_json(r#"{"id":"r","sql":"s","actions":[{"log":{}}],"options":{"lateTolerance":-1}}"#, None)
        .unwrap_err();
    assert!(err.contains("non-negative"), "{err}");
}

#[test]
fn parse_duration_cases() {
    assert_eq!(parse_duration_ms("1000"), Ok(1000));
    assert_eq!(parse_duration_ms("2h"), Ok(7_200_000));
    assert_eq!(parse_duration_ms("1h1m1s1ms"), Ok(3_661_001));
    for bad in ["", "s", "1x", "1.2.3s", "-1s", "1 s", "10us"] {
        assert!(parse_duration_ms(bad).is_err(), "{bad:?} should be rejected");
    }
}

#[test]
fn action_flag_forms() {
    let log = action_from_flag("log").unwrap();
    assert_eq!(log.r#type, "log");
    assert!(log.props.unwrap().fields.is_empty());

    let mqtt = action_from_flag(r#"mqtt={"server":"tcp://h:1883","topic":"t=1"}"#).unwrap();
    assert_eq!(mqtt.r#type, "mqtt");
    assert_eq!(string_prop(&mqtt, "topic").as_deref(), Some("t=1"));

    let pasted = action_from_flag(r#"{"memory":{"topic":"x"}}"#).unwrap();
    assert_eq!(pasted.r#type, "memory");
}

#[test]
fn bad_action_flags_are_rejected() {
    assert!(action_from_flag("").is_err());
    assert!(action_from_flag("mqtt=").is_err());
    assert!(action_from_flag("mqtt=[1]").unwrap_err().contains("JSON object"));
    assert!(action_from_flag("my sink").is_err());
}

#[test]
fn rule_from_flags_builds_the_rule() {
    let actions = vec!["log".to_string(), r#"rest={"url":"http://x"}"#.to_string()];
    let rule = rule_from_flags("r1", "SELECT * FROM demo", &actions, Some(r#"{"qos":1}"#)).unwrap();
    assert_eq!(rule.id, "r1");
    assert_eq!(rule.actions.len(), 2);
    assert_eq!(rule.options.unwrap().qos, 1);
    assert!(rule_from_flags("r1", "SELECT 1", &[], None).unwrap_err().contains("--action"));
    assert!(rule_from_flags("r1", "SELECT 1", &actions, Some("{\"qos\":\"x\"}")).is_err());
}

#[test]
fn struct_values_round_trip() {
    let value: Value = serde_json::from_str(r#"{"a":[1,2.5,"x",true,null,{"b":{}}]}"#).unwrap();
    let Value::Object(map) = &value else { unreachable!() };
    assert_eq!(Value::Object(struct_to_json(&struct_from_json(map))), value);
}

#[test]
fn schedules_are_read_as_ekuiper_writes_them() {
    let text = r#"{"id":"r","sql":"SELECT 1 FROM s","actions":[{"log":{}}],"options":{"concurrency":2,"debug":true,"cron":"*/10 * * * *","duration":"1m","cronDatetimeRange":[{"begin":"2023-06-26 10:00:00","end":"2023-06-26 20:00:00"},{"beginTimestamp":1701401478000,"endTimestamp":1701401578000}]}}"#;
    let options = rule_from_json(text, None).unwrap().options.unwrap();
    assert_eq!((options.cron.as_str(), options.duration_ms), ("*/10 * * * *", Some(60_000)));
    assert_eq!((options.concurrency, options.debug), (Some(2), true));
    assert_eq!(options.cron_datetime_range[0].begin_ms, 1_687_773_600_000, "UTC");
    assert_eq!(options.cron_datetime_range[1].end_ms, 1_701_401_578_000);
    let bad = text.replace("2023-06-26 10:00:00", "26/06/2023");
    assert!(rule_from_json(&bad, None).unwrap_err().contains("YYYY-MM-DD hh:mm:ss"));
}
