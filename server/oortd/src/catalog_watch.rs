//! Following a shared catalog: the rules other `oortd` create, change, stop
//! or delete in it are run, restarted, stopped or removed here too, in the
//! order etcd committed the changes. This server's own changes come back the
//! same way and are already in effect ([`RuleController::runs_as`]).

use oort_store::RuleChange;
use tokio::sync::mpsc::Receiver;

use crate::rules::RuleController;

/// Applies `changes` to this server's rules until the watch ends.
pub fn follow(rules: RuleController, mut changes: Receiver<RuleChange>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(change) = changes.recv().await {
            apply(&rules, change).await;
        }
    })
}

async fn apply(rules: &RuleController, change: RuleChange) {
    match change {
        RuleChange::Put(rule) if rule.triggered.unwrap_or(true) => {
            if rules.runs_as(&rule) {
                return;
            }
            match rules.run(&rule).await {
                Ok(()) => tracing::info!(rule = %rule.id, "rule (re)started: the shared catalog changed"),
                Err(error) => tracing::error!(rule = %rule.id, %error, "rule of the shared catalog could not start"),
            }
        }
        RuleChange::Put(rule) => {
            if rules.running(&rule.id).is_some() {
                rules.halt(&rule.id).await;
                tracing::info!(rule = %rule.id, "rule stopped: the shared catalog changed");
            }
        }
        RuleChange::Deleted(id) => {
            if let Some(rule) = rules.running(&id) {
                rules.remove(&rule).await;
            } else {
                rules.halt(&id).await;
            }
            tracing::info!(rule = %id, "rule removed: deleted from the shared catalog");
        }
    }
}
