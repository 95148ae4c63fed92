//! The `file` sink through a real oortd: the time to write the results of a
//! pass-through rule over a file of JSON lines, against the `memory` sink
//! on the same input in the same run (the cost of the source and the rule
//! is common to both; what differs is the sink).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use oort_proto::v1::{Action, CreateRuleRequest, GetRuleStatusRequest, Rule};

use crate::file_source::{serve_file, write_events};
use crate::report::median;

/// Seconds from creating the rule until its sink has taken every result, and
/// the server's CPU seconds over that time.
async fn write_with(binary: &Path, lines: usize, content: &Path, sink: &str) -> Result<(f64, f64)> {
    let (dir, server, mut rules) = serve_file(binary, content).await?;
    use prost_types::value::Kind;
    // `file0`: the file sink writing each result as it comes (`interval` 0).
    let mut fields = vec![("path", Kind::StringValue("out.jsonl".into())), ("sendSingle", Kind::BoolValue(true))];
    match sink {
        "file0" => fields.push(("interval", Kind::NumberValue(0.0))),
        "file" => {}
        _ => fields = vec![("topic", Kind::StringValue("out".into()))],
    }
    let sink_type = if sink == "memory" { "memory" } else { "file" };
    let props = prost_types::Struct {
        fields: fields.into_iter().map(|(k, v)| (k.to_owned(), prost_types::Value { kind: Some(v) })).collect(),
    };
    let rule = Rule {
        id: "write".into(),
        sql: "SELECT * FROM f".into(),
        actions: vec![Action { r#type: sink_type.into(), props: Some(props) }],
        ..Default::default()
    };
    let cpu_before = server.cpu_time()?;
    let started = Instant::now();
    rules.create_rule(CreateRuleRequest { rule: Some(rule) }).await?;
    let operator = format!("sink_{sink_type}_0");
    loop {
        let status = rules.get_rule_status(GetRuleStatusRequest { id: "write".into() }).await?.into_inner();
        let out = status.operators.iter().find(|o| o.name == operator).map_or(0, |o| o.records_out_total);
        if out >= lines as u64 {
            break;
        }
        if started.elapsed() > Duration::from_secs(300) {
            bail!("the {sink} sink took {out} of {lines} results in 300 s");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let (elapsed, cpu) = (started.elapsed().as_secs_f64(), (server.cpu_time()? - cpu_before).as_secs_f64());
    server.stop()?;
    if sink_type == "file" {
        // Written on the rule's stop at the latest: every line is there.
        let written = std::fs::read_to_string(dir.path().join("data/files/out.jsonl"))?.lines().count();
        if written != lines {
            bail!("the file holds {written} of {lines} results");
        }
    }
    Ok((elapsed, cpu))
}

/// Prints, for `binary`, the `file` sink's time and CPU against the `memory`
/// sink's, `rounds` runs each interleaved (medians).
pub async fn run(binary: &Path, lines: usize, rounds: usize) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let content = dir.path().join("events.jsonl");
    write_events(&content, lines)?;
    let mut runs: [(Vec<f64>, Vec<f64>); 3] = Default::default();
    for _ in 0..rounds {
        for (sink, (times, cpus)) in ["memory", "file", "file0"].into_iter().zip(&mut runs) {
            let (time, cpu) = write_with(binary, lines, &content, sink).await?;
            times.push(time);
            cpus.push(cpu);
        }
    }
    let [(memory_times, memory_cpus), (file_times, file_cpus), (each_times, each_cpus)] = &mut runs;
    let (memory_time, file_time, each_time) = (median(memory_times), median(file_times), median(each_times));
    let (memory_cpu, file_cpu, each_cpu) = (median(memory_cpus), median(file_cpus), median(each_cpus));
    crate::out!(
        "| {lines} results of `SELECT * FROM f` (a file of JSON lines), median of {rounds} | time | server CPU | ratio of time |"
    );
    crate::out!("|---|---|---|---|");
    crate::out!("| `memory` sink (baseline) | {memory_time:.2} s | {memory_cpu:.2} s | 1.00 |");
    crate::report::against(format!("file sink: {lines} results written"), file_time, "s", "memory sink", memory_time);
    crate::report::against(
        format!("file sink: server CPU for {lines} results"),
        file_cpu,
        "s",
        "memory sink",
        memory_cpu,
    );
    crate::out!(
        "| `file` sink, one JSON object a line | {file_time:.2} s | {file_cpu:.2} s | {:.2} |",
        file_time / memory_time
    );
    crate::out!(
        "| `file` sink, `interval` 0 (each result written as it comes, as before) | {each_time:.2} s | {each_cpu:.2} s | {:.2} |",
        each_time / memory_time
    );
    Ok(())
}
