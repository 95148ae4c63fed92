//! One slow rule beside a fast one on the same stream: the fast rule's
//! throughput through a real oortd with and without a neighbour whose REST
//! sink answers in 100 ms (issue 20: it fell from 5.6 M to 6 k events in 15 s).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::report::median;
use anyhow::Result;
use oort_proto::v1::rule_service_client::RuleServiceClient;
use oort_proto::v1::{Action, CreateRuleRequest, DeleteRuleRequest, GetRuleStatusRequest, Rule};

use crate::control_plane::Server;
use crate::publish;

/// How long the slow sink takes to answer.
const SINK_DELAY: Duration = Duration::from_millis(100);

/// An HTTP endpoint on loopback that answers every request after [`SINK_DELAY`].
async fn slow_endpoint() -> Result<SocketAddr> {
    let app = axum::Router::new().fallback(|| async {
        tokio::time::sleep(SINK_DELAY).await;
        "ok"
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

/// The slow neighbour: every event of `demo` to the slow endpoint, with the
/// default options of a qos 0 rule.
fn slow_rule(endpoint: SocketAddr) -> Rule {
    let url = prost_types::Value { kind: Some(prost_types::value::Kind::StringValue(format!("http://{endpoint}/"))) };
    Rule {
        id: "slow".into(),
        sql: "SELECT * FROM demo".into(),
        actions: vec![Action {
            r#type: "rest".into(),
            props: Some(prost_types::Struct { fields: [("url".to_owned(), url)].into() }),
        }],
        ..Default::default()
    }
}

/// Prints the filter rule's events/s through Publish alone and beside the slow
/// rule, `rounds` of each interleaved, as a markdown table.
pub async fn run(binary: &Path, count: usize, batch: usize, rounds: usize) -> Result<()> {
    let endpoint = slow_endpoint().await?;
    let dir = tempfile::tempdir()?;
    let (server, _) = Server::start(binary, &dir.path().join("data")).await?;
    publish::create_rules(&server).await?;
    let mut rules = RuleServiceClient::new(server.channel().await?);
    let (mut alone, mut beside, mut dropped) = (Vec::new(), Vec::new(), 0);
    for _ in 0..rounds {
        alone.push(publish::measure(&server, "demo", "filter", count, batch).await?.0);
        rules.create_rule(CreateRuleRequest { rule: Some(slow_rule(endpoint)) }).await?;
        beside.push(publish::measure(&server, "demo", "filter", count, batch).await?.0);
        let status = rules.get_rule_status(GetRuleStatusRequest { id: "slow".into() }).await?.into_inner();
        dropped += status.operators.first().map_or(0, |source| source.records_dropped_total);
        rules.delete_rule(DeleteRuleRequest { id: "slow".into() }).await?;
    }
    server.stop()?;
    let (alone, beside) = (median(&mut alone), median(&mut beside));
    crate::out!(
        "| filter + project through Publish ({count} events, {batch} a request, median of {rounds}) | events/s | ratio |"
    );
    crate::out!("|---|---|---|");
    crate::out!("| alone (baseline) | {alone:.0} | 1.00 |");
    crate::report::against("Publish beside a rule with a slow sink", beside, "events/s", "the rule alone", alone);
    crate::out!(
        "| beside a rule whose REST sink answers in {} ms ({dropped} events dropped by it, counted) | {beside:.0} | {:.2} |",
        SINK_DELAY.as_millis(),
        beside / alone
    );
    Ok(())
}
