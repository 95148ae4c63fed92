//! `takeover`: two `oortd` share a catalog in a real etcd; the time from the
//! death (`kill -9`) of the server that runs a rule to the rule running on the
//! other, against the owner's lease time to live, the longest it may take.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use oort_proto::v1::rule_service_client::RuleServiceClient;
use oort_proto::v1::stream_service_client::StreamServiceClient;
use oort_proto::v1::{Action, CreateRuleRequest, CreateStreamRequest, GetRuleStatusRequest, Rule, RuleState};

use crate::control_plane::Server;
use crate::report::median;

/// The lease a server holds its rules by (`oort_store::ownership::LEASE_TTL_SECS`).
const LEASE_TTL_SECS: f64 = 5.0;

/// Measures `rounds` takeovers, each with two new servers.
pub async fn run(binary: &Path, rounds: usize) -> Result<()> {
    let etcd = oort_testkit::etcd::EtcdServer::start();
    let mut seconds = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let catalog = format!("etcd://{}/takeover{round}", etcd.endpoint);
        let dirs = (tempfile::tempdir()?, tempfile::tempdir()?);
        let flags = ["--catalog", &catalog, "--http-push-listen", "off"];
        let (owner, _) = Server::start_with_args(binary, dirs.0.path(), true, &flags).await?;
        let (other, _) = Server::start_with_args(binary, dirs.1.path(), true, &flags).await?;
        let sql = r#"CREATE STREAM s (v BIGINT) WITH (TYPE="grpc", DATASOURCE="s")"#.to_owned();
        StreamServiceClient::new(owner.channel().await?).create_stream(CreateStreamRequest { sql }).await?;
        let rule = Rule {
            id: "r".into(),
            sql: "SELECT v FROM s".into(),
            actions: vec![Action { r#type: "log".into(), ..Default::default() }],
            ..Default::default()
        };
        RuleServiceClient::new(owner.channel().await?).create_rule(CreateRuleRequest { rule: Some(rule) }).await?;
        // The other server has heard of the rule and left it to its owner.
        wait_for(&other, |running, owner| !running && !owner.is_empty(), Duration::from_secs(20)).await?;
        let died = Instant::now();
        owner.kill9();
        wait_for(&other, |running, _| running, Duration::from_secs(30)).await?;
        seconds.push(died.elapsed().as_secs_f64());
        other.stop()?;
    }
    let taken = median(&mut seconds.clone());
    crate::out!("| two oortd sharing a catalog in etcd, {rounds} rounds | value |");
    crate::out!("|---|---|");
    crate::out!("| from `kill -9` of a rule's server to the rule running on the other (median) | {taken:.2} s |");
    crate::out!("| each round | {} |", seconds.iter().map(|s| format!("{s:.2} s")).collect::<Vec<_>>().join(" · "));
    crate::out!("| the owner's lease time to live (the most it may take, besides the watch) | {LEASE_TTL_SECS:.0} s |");
    crate::report::against(
        "takeover after kill -9 of a rule's server",
        taken,
        "s",
        "the lease's time to live",
        LEASE_TTL_SECS,
    );
    Ok(())
}

/// Polls the rule's status on `server` until `done(running, owner)`.
async fn wait_for(server: &Server, done: impl Fn(bool, &str) -> bool, within: Duration) -> Result<()> {
    let deadline = Instant::now() + within;
    let mut rules = RuleServiceClient::new(server.channel().await?);
    loop {
        let status = rules.get_rule_status(GetRuleStatusRequest { id: "r".into() }).await?.into_inner();
        if done(status.state == RuleState::Running as i32, &status.owner) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("rule r: {:?} after {within:?}", status);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
