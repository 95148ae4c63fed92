//! The partitions of rules' sources, as `GetRuleStatus` shows them. A rule
//! split over its source's partitions runs on every server sharing the
//! catalog, each on the partitions the broker assigns it: each server
//! reports its own in the shared store ([`oort_store::Ownership::report`],
//! gone with the server's lease), and any server lists them all.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use oort_connectors::connections::{AssignedPartition, Connections};
use oort_proto::v1::PartitionStatus;

use crate::rules::RuleController;

/// How often a server looks at its split rules' partitions.
const REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// How often it reports them even when unchanged: a report lost with a
/// lapsed lease comes back within this.
const REFRESH_INTERVAL: Duration = Duration::from_secs(10);

/// The partitions this server's clients of a rule are assigned.
fn local(connections: &Connections, rule_id: &str) -> Vec<AssignedPartition> {
    connections.rule_clients(rule_id).into_iter().flat_map(|c| c.partitions).collect()
}

/// Reports, every second when they change, the partitions of the rules this
/// server runs split, for as long as the server runs.
pub fn report(rules: RuleController, connections: Arc<Connections>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Some(ownership) = rules.ownership().cloned() else { return };
        let mut reported: HashMap<String, (Vec<u8>, tokio::time::Instant)> = HashMap::new();
        let mut tick = tokio::time::interval(REPORT_INTERVAL);
        loop {
            tick.tick().await;
            let split = rules.split_rules();
            reported.retain(|id, _| split.contains(id));
            for id in split {
                let Ok(encoded) = serde_json::to_vec(&local(&connections, &id)) else { continue };
                let fresh =
                    reported.get(&id).is_some_and(|(last, at)| *last == encoded && at.elapsed() < REFRESH_INTERVAL);
                if fresh {
                    continue;
                }
                let (ownership, rule, report) = (Arc::clone(&ownership), id.clone(), encoded.clone());
                match tokio::task::spawn_blocking(move || ownership.report(&rule, Some(report))).await {
                    Ok(Ok(())) => {
                        reported.insert(id, (encoded, tokio::time::Instant::now()));
                    }
                    Ok(Err(error)) => tracing::warn!(rule = %id, %error, "cannot report the rule's partitions"),
                    Err(_) => return,
                }
            }
        }
    })
}

/// The partitions of a rule's source: every server's for a rule split here,
/// this server's otherwise.
pub async fn status(rules: &RuleController, connections: Option<&Connections>, rule_id: &str) -> Vec<PartitionStatus> {
    let mut partitions: Vec<PartitionStatus> = match rules.ownership().filter(|_| rules.is_split(rule_id)) {
        Some(ownership) => {
            let (ownership, id) = (Arc::clone(ownership), rule_id.to_owned());
            let reports = tokio::task::spawn_blocking(move || ownership.reports(&id)).await;
            let reports = match reports {
                Ok(Ok(reports)) => reports,
                Ok(Err(error)) => {
                    tracing::warn!(rule = rule_id, %error, "cannot read the rule's partitions");
                    Vec::new()
                }
                Err(_) => Vec::new(),
            };
            reports
                .into_iter()
                .flat_map(|(server, report)| {
                    let assigned: Vec<AssignedPartition> = serde_json::from_slice(&report).unwrap_or_default();
                    assigned.into_iter().map(move |p| to_proto(p, server.clone()))
                })
                .collect()
        }
        None => connections
            .map(|c| local(c, rule_id))
            .unwrap_or_default()
            .into_iter()
            .map(|p| to_proto(p, rules.ownership().map(|o| o.instance().to_owned()).unwrap_or_default()))
            .collect(),
    };
    partitions.sort_by(|a, b| (&a.topic, a.partition, &a.owner).cmp(&(&b.topic, b.partition, &b.owner)));
    partitions
}

fn to_proto(partition: AssignedPartition, owner: String) -> PartitionStatus {
    PartitionStatus { topic: partition.topic, partition: partition.partition, owner, lag: partition.lag }
}
