//! Keeping a client's calls off etcd members that are down. etcd-client
//! balances calls over every endpoint it was given (tonic's balance) and goes
//! on handing some to a member that no longer answers, each of them failing
//! with UNAVAILABLE although the cluster has a quorum. Here every member is
//! tried with a TCP connection every half second: one that does not take it
//! is taken out of the balance, and put back once it does.

use std::time::Duration;

use etcd_client::Client;

/// How often the members are tried, and how long a connection may take.
const CHECK_EVERY: Duration = Duration::from_millis(500);

/// The members of a client's balance and whether each is in it.
pub(crate) struct Members {
    client: Client,
    /// `http://host:port`, as the balance names them, and whether it is in.
    members: Vec<(String, bool)>,
}

impl Members {
    /// The members `endpoints` (`host:port` or URLs), all in the balance.
    pub(crate) fn new(client: Client, endpoints: &[String]) -> Self {
        let url = |e: &String| if e.contains("://") { e.clone() } else { format!("http://{e}") };
        Members { client, members: endpoints.iter().map(|e| (url(e), true)).collect() }
    }

    /// Tries every member once: those that do not answer leave the balance,
    /// those that answer again come back. One member is never taken out:
    /// with it the calls fail as they would anyway, without it they could not start.
    pub(crate) async fn check(&mut self) {
        if self.members.len() < 2 {
            return;
        }
        for (url, in_balance) in &mut self.members {
            let address = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest).to_owned();
            let up =
                matches!(tokio::time::timeout(CHECK_EVERY, tokio::net::TcpStream::connect(address)).await, Ok(Ok(_)));
            if up == *in_balance {
                continue;
            }
            let changed = if up {
                self.client.add_endpoint(url.as_str()).await
            } else {
                self.client.remove_endpoint(url.as_str()).await
            };
            match changed {
                Ok(()) => {
                    *in_balance = up;
                    tracing::warn!(member = %url, up, "etcd member {}", if up { "back" } else { "down: calls go to the others" });
                }
                Err(error) => tracing::warn!(member = %url, %error, "cannot change the etcd client's members"),
            }
        }
    }

    /// Checks the members for as long as the runtime runs.
    pub(crate) async fn follow(mut self) {
        let mut tick = tokio::time::interval(CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.check().await;
        }
    }
}
