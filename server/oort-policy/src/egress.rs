//! Where the server may connect on a client's behalf: one policy for every
//! HTTP(S), gRPC and tarpc connection that a rule, an external service or a
//! plugin URL makes. Public addresses are allowed; loopback, private (RFC 1918,
//! ULA), link-local (cloud metadata), carrier-grade NAT, unspecified, broadcast
//! and multicast addresses are refused unless `egress_allow` names them.
//!
//! The check is made on the address actually connected: names are resolved
//! first (a name that resolves to 127.0.0.1 is refused like 127.0.0.1), and
//! HTTP redirects are checked hop by hop. Brokers that the operator configures
//! (MQTT) are not subject to it.
//!
//! `egress_allow` entries:
//!
//! | entry | allows |
//! |---|---|
//! | `10.0.0.0/8`, `fd00::/8` | every address in the network, any port |
//! | `127.0.0.1`, `::1` | that address, any port |
//! | `127.0.0.1:50051`, `[::1]:50051` | that address and port |
//! | `svc.internal` | whatever that name resolves to, any port |
//! | `svc.internal:8080` | that name on that port only |
//! | `*` | everything (tests, trusted networks) |

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use ipnet::IpNet;

/// Why a connection is refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum EgressError {
    /// The address is internal and no entry allows it.
    #[error(
        "connecting to {host} ({addr}) is refused: {kind} address; allow it with egress_allow in the server's oort.toml"
    )]
    Refused {
        /// The host as named (a name or an address).
        host: String,
        /// The address it resolved to.
        addr: SocketAddr,
        /// What kind of internal address it is.
        kind: &'static str,
    },
    /// A name listed with a port was asked for on another one.
    #[error("connecting to {host} on port {port} is refused: egress_allow lists {host} with other ports only")]
    Port {
        /// The name.
        host: String,
        /// The port asked for.
        port: u16,
    },
    /// The name does not resolve.
    #[error("cannot resolve {host}: {message}")]
    Resolve {
        /// The name.
        host: String,
        /// Why.
        message: String,
    },
}

/// One `egress_allow` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rule {
    Any,
    Net(IpNet),
    Addr(SocketAddr),
    Host(String),
    HostPort(String, u16),
}

impl FromStr for Rule {
    type Err = String;

    fn from_str(entry: &str) -> Result<Self, String> {
        let entry = entry.trim();
        if entry == "*" {
            return Ok(Rule::Any);
        }
        if let Ok(net) = IpNet::from_str(entry) {
            return Ok(Rule::Net(net));
        }
        if let Ok(ip) = IpAddr::from_str(entry) {
            return Ok(Rule::Net(IpNet::from(ip)));
        }
        if let Ok(addr) = SocketAddr::from_str(entry) {
            return Ok(Rule::Addr(addr));
        }
        let (host, port) = match entry.rsplit_once(':') {
            Some((host, port)) => {
                (host, Some(port.parse::<u16>().map_err(|_| format!("{entry:?}: the port is not a number"))?))
            }
            None => (entry, None),
        };
        let valid = !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
        if !valid {
            return Err(format!(
                "{entry:?} is neither a network (10.0.0.0/8), an address (127.0.0.1, 127.0.0.1:50051) nor a host name (svc.internal, svc.internal:8080)"
            ));
        }
        let host = host.to_ascii_lowercase();
        Ok(port.map_or(Rule::Host(host.clone()), |port| Rule::HostPort(host, port)))
    }
}

/// The egress policy: which internal addresses are allowed anyway.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    rules: Vec<Rule>,
}

/// The kind of internal address `ip` is, or `None` for a public one.
pub fn internal_kind(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_loopback() {
                Some("a loopback")
            } else if v4.is_private() {
                Some("a private")
            } else if v4.is_link_local() {
                Some("a link-local (metadata)")
            } else if v4.is_unspecified() || a == 0 {
                Some("an unspecified")
            } else if a == 100 && (b & 0xc0) == 64 {
                Some("a carrier-grade NAT")
            } else if v4.is_broadcast() || v4.is_multicast() {
                Some("a broadcast or multicast")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return internal_kind(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some("a loopback")
            } else if v6.is_unspecified() {
                Some("an unspecified")
            } else if (first & 0xfe00) == 0xfc00 {
                Some("a unique local (private)")
            } else if (first & 0xffc0) == 0xfe80 {
                Some("a link-local")
            } else if v6.is_multicast() {
                Some("a multicast")
            } else {
                None
            }
        }
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, |v4| SocketAddr::new(IpAddr::V4(v4), addr.port())),
        IpAddr::V4(_) => addr,
    }
}

impl EgressPolicy {
    /// The policy of the `egress_allow` entries.
    pub fn new<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        let rules = entries.iter().map(|e| e.as_ref().parse()).collect::<Result<_, _>>()?;
        Ok(Self { rules })
    }

    /// Everything allowed (`egress_allow = ["*"]`): for tests and benchmarks.
    pub fn allow_all() -> Self {
        Self { rules: vec![Rule::Any] }
    }

    /// Whether connecting to `addr`, which `host` (a name, or the address
    /// itself) resolved to, is allowed.
    pub fn check(&self, host: &str, addr: SocketAddr) -> Result<(), EgressError> {
        let addr = canonical(addr);
        let Some(kind) = internal_kind(addr.ip()) else { return Ok(()) };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let allowed = self.rules.iter().any(|rule| match rule {
            Rule::Any => true,
            Rule::Net(net) => net.contains(&addr.ip()),
            Rule::Addr(allowed) => canonical(*allowed) == addr,
            Rule::Host(name) => name.eq_ignore_ascii_case(host),
            Rule::HostPort(name, port) => name.eq_ignore_ascii_case(host) && *port == addr.port(),
        });
        if allowed { Ok(()) } else { Err(EgressError::Refused { host: host.to_string(), addr, kind }) }
    }

    /// Resolves `host:port` and keeps the addresses the policy allows; an
    /// error if none is left.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, EgressError> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let resolved = tokio::net::lookup_host((bare, port))
            .await
            .map_err(|e| EgressError::Resolve { host: host.to_string(), message: e.to_string() })?;
        self.keep_allowed(bare, resolved, false)
    }

    /// The addresses `host` resolved to that the policy allows; an error if
    /// none is left. With `port_unknown` (reqwest's resolver), a name listed
    /// with ports passes whatever it resolves to: the URL check holds it to
    /// its ports.
    fn keep_allowed(
        &self,
        host: &str,
        resolved: impl Iterator<Item = SocketAddr>,
        port_unknown: bool,
    ) -> Result<Vec<SocketAddr>, EgressError> {
        let listed = port_unknown && self.names(host);
        let mut allowed = Vec::new();
        let mut refused = None;
        for addr in resolved {
            match self.check(host, addr) {
                Ok(()) => allowed.push(addr),
                Err(_) if listed => allowed.push(addr),
                Err(error) => refused = Some(error),
            }
        }
        match (allowed.is_empty(), refused) {
            (false, _) => Ok(allowed),
            (true, Some(error)) => Err(error),
            (true, None) => Err(EgressError::Resolve { host: host.to_string(), message: "no address".into() }),
        }
    }

    /// Connects a TCP stream to `host:port` through the policy (gRPC, tarpc).
    pub async fn connect(&self, host: &str, port: u16) -> std::io::Result<tokio::net::TcpStream> {
        let addrs =
            self.resolve(host, port).await.map_err(|e| std::io::Error::new(std::io::ErrorKind::PermissionDenied, e))?;
        let mut last = None;
        for addr in addrs {
            match tokio::net::TcpStream::connect(addr).await {
                Ok(stream) => return Ok(stream),
                Err(error) => last = Some(error),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no address")))
    }

    /// The check of a URL before any connection: an address in it is checked
    /// with its port; a name listed with ports only must use one of them (its
    /// addresses are checked when it is resolved).
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), EgressError> {
        let port = url.port_or_known_default().unwrap_or(80);
        match url.host() {
            Some(url::Host::Ipv4(ip)) => self.check(&ip.to_string(), SocketAddr::new(IpAddr::V4(ip), port)),
            Some(url::Host::Ipv6(ip)) => self.check(&ip.to_string(), SocketAddr::new(IpAddr::V6(ip), port)),
            Some(url::Host::Domain(name)) => {
                // The ports the name is listed with (`None`: any).
                let listed: Vec<Option<u16>> = self
                    .rules
                    .iter()
                    .filter_map(|rule| match rule {
                        Rule::Host(n) if n.eq_ignore_ascii_case(name) => Some(None),
                        Rule::HostPort(n, p) if n.eq_ignore_ascii_case(name) => Some(Some(*p)),
                        _ => None,
                    })
                    .collect();
                if listed.is_empty() || listed.iter().any(|p| p.is_none_or(|p| p == port)) {
                    Ok(())
                } else {
                    Err(EgressError::Port { host: name.to_string(), port })
                }
            }
            None => Ok(()),
        }
    }

    /// Whether a name's internal addresses may be used whatever the port: it is
    /// listed, with or without ports (the URL check holds it to its ports).
    fn names(&self, host: &str) -> bool {
        self.rules
            .iter()
            .any(|rule| matches!(rule, Rule::Host(n) | Rule::HostPort(n, _) if n.eq_ignore_ascii_case(host)))
    }

    /// `builder` with this policy: names resolved through it, every redirect
    /// hop checked. Callers check the first URL with [`EgressPolicy::check_url`].
    pub fn http_client(self: &Arc<Self>, builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        let policy = Arc::clone(self);
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= 10 {
                return attempt.error("too many redirects");
            }
            match policy.check_url(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(error) => attempt.error(error),
            }
        });
        builder.dns_resolver(Arc::new(Resolver(Arc::clone(self)))).redirect(redirects)
    }
}

impl fmt::Display for EgressPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entries: Vec<String> = self
            .rules
            .iter()
            .map(|rule| match rule {
                Rule::Any => "*".to_string(),
                Rule::Net(net) => net.to_string(),
                Rule::Addr(addr) => addr.to_string(),
                Rule::Host(host) => host.clone(),
                Rule::HostPort(host, port) => format!("{host}:{port}"),
            })
            .collect();
        write!(f, "[{}]", entries.join(", "))
    }
}

/// reqwest's resolver through the policy. It does not know the port: a
/// name's internal addresses pass when the name is listed (the URL check
/// enforces its ports) or when a network entry holds them.
struct Resolver(Arc<EgressPolicy>);

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = Arc::clone(&self.0);
        let host = name.as_str().to_string();
        Box::pin(async move {
            let resolved = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let allowed = policy.keep_allowed(&host, resolved, true)?;
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn internal_addresses_are_refused_by_default_and_public_ones_pass() {
        let policy = EgressPolicy::default();
        for internal in [
            "127.0.0.1:80",
            "10.1.2.3:80",
            "172.16.0.1:80",
            "192.168.1.1:80",
            "169.254.169.254:80",
            "[::1]:80",
            "[fd00::1]:80",
            "[fe80::1]:80",
            "0.0.0.0:80",
            "100.64.0.1:80",
            "[::ffff:127.0.0.1]:80",
            "224.0.0.1:80",
        ] {
            let error = policy.check("h", addr(internal)).unwrap_err();
            assert!(error.to_string().contains("egress_allow"), "{internal}: {error}");
        }
        for public in ["1.1.1.1:443", "[2606:4700::1111]:443", "8.8.8.8:53"] {
            assert!(policy.check("h", addr(public)).is_ok(), "{public}");
        }
    }

    #[test]
    fn entries_allow_networks_addresses_and_names() {
        let policy =
            EgressPolicy::new(&["10.0.0.0/8", "127.0.0.1:50051", "::1", "svc.internal", "db.lan:5432"]).unwrap();
        assert!(policy.check("h", addr("10.9.9.9:1")).is_ok());
        assert!(policy.check("127.0.0.1", addr("127.0.0.1:50051")).is_ok());
        assert!(policy.check("127.0.0.1", addr("127.0.0.1:22")).is_err(), "another port");
        assert!(policy.check("h", addr("[::1]:22")).is_ok());
        assert!(policy.check("svc.internal", addr("192.168.0.5:80")).is_ok());
        assert!(policy.check("SVC.internal", addr("192.168.0.5:80")).is_ok(), "names are case-insensitive");
        assert!(policy.check("db.lan", addr("192.168.0.6:5432")).is_ok());
        assert!(policy.check("db.lan", addr("192.168.0.6:22")).is_err());
        assert!(policy.check("other", addr("192.168.0.5:80")).is_err());
        assert!(EgressPolicy::new(&["not a host"]).unwrap_err().contains("neither"));
        assert!(EgressPolicy::new(&["h:port"]).is_err());
        assert!(EgressPolicy::allow_all().check("h", addr("127.0.0.1:1")).is_ok());
    }

    #[test]
    fn urls_are_checked_with_their_ports() {
        let policy = EgressPolicy::new(&["127.0.0.1:8090", "db.lan:5432"]).unwrap();
        let url = |u: &str| reqwest::Url::parse(u).unwrap();
        assert!(policy.check_url(&url("http://127.0.0.1:8090/x")).is_ok());
        assert!(policy.check_url(&url("http://127.0.0.1:8091/x")).is_err());
        assert!(policy.check_url(&url("http://169.254.169.254/latest/meta-data")).is_err());
        assert!(policy.check_url(&url("http://[::1]:8090/")).is_err());
        assert!(policy.check_url(&url("http://db.lan:5432/")).is_ok());
        assert!(matches!(policy.check_url(&url("http://db.lan:22/")), Err(EgressError::Port { .. })));
        assert!(policy.check_url(&url("https://example.com/")).is_ok(), "names are checked when resolved");
    }

    #[tokio::test]
    async fn names_are_checked_on_what_they_resolve_to() {
        let error = EgressPolicy::default().resolve("localhost", 80).await.unwrap_err();
        assert!(matches!(error, EgressError::Refused { .. }), "{error}");
        assert!(EgressPolicy::new(&["localhost"]).unwrap().resolve("localhost", 80).await.is_ok());
        assert!(EgressPolicy::new(&["127.0.0.0/8", "::1"]).unwrap().resolve("localhost", 80).await.is_ok());
    }
}
