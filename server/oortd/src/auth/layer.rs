//! The tower layer in front of every service: authenticates, checks the
//! method's right, logs mutating calls, and answers refusals itself so that no
//! handler runs for them.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{Either, Ready, ready};
use tonic::Status;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tower::{Layer, Service};

use super::rights::{self, Right};
use super::{Authenticator, Caller, Role};

/// Health stays open, for probes and load balancers.
const HEALTH: &str = "/grpc.health.v1.Health/";

/// Where audit lines go: `RUST_LOG=oort::audit=info` keeps them alone.
pub const AUDIT_TARGET: &str = "oort::audit";

/// Authentication and authorization for every call; `None` when disabled
/// (`auth = false`, on loopback only), where every caller is an admin.
#[derive(Clone)]
pub struct AuthLayer(Option<Arc<Authenticator>>);

impl AuthLayer {
    /// Checks calls against `authenticator`.
    pub fn new(authenticator: Arc<Authenticator>) -> Self {
        Self(Some(authenticator))
    }

    /// Lets every call through as an anonymous admin.
    pub fn disabled() -> Self {
        Self(None)
    }

    /// The authenticator, unless authentication is off.
    pub fn authenticator(&self) -> Option<Arc<Authenticator>> {
        self.0.clone()
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Authorize<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authorize { inner, authenticator: self.0.clone() }
    }
}

/// The service [`AuthLayer`] wraps around the router.
#[derive(Clone)]
pub struct Authorize<S> {
    inner: S,
    authenticator: Option<Arc<Authenticator>>,
}

impl<S, B, R> Service<http::Request<B>> for Authorize<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    R: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<S::Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        match self.check(&request) {
            Ok(Some(caller)) => {
                request.extensions_mut().insert(caller);
                Either::Left(self.inner.call(request))
            }
            Ok(None) => Either::Left(self.inner.call(request)),
            Err(status) => Either::Right(ready(Ok(status.into_http()))),
        }
    }
}

impl<S> Authorize<S> {
    /// The caller of `request` if it may make it (`None` for open methods).
    fn check<B>(&self, request: &http::Request<B>) -> Result<Option<Caller>, Status> {
        let path = request.uri().path();
        if path.starts_with(HEALTH) {
            return Ok(None);
        }
        let right = rights::required(path).unwrap_or(Right::Admin);
        let caller = match &self.authenticator {
            None => Caller { name: "anonymous".into(), role: Role::Admin },
            Some(authenticator) => {
                let common_name = client_common_name(request);
                authenticator
                    .authenticate(request.headers(), common_name.as_deref())
                    .map_err(|error| Status::unauthenticated(error.to_string()))?
            }
        };
        let method = path.trim_start_matches('/');
        if !caller.role.allows(right) {
            tracing::info!(target: AUDIT_TARGET, caller = %caller.name, role = %caller.role, method, "denied");
            return Err(Status::permission_denied(format!(
                "{} (role {}) lacks the right `{}` that {method} needs",
                caller.name,
                caller.role,
                right.as_str()
            )));
        }
        if right.mutates() {
            tracing::info!(target: AUDIT_TARGET, caller = %caller.name, role = %caller.role, method, "call");
        }
        Ok(Some(caller))
    }
}

/// The Common Name of the client certificate that TLS verified, if any.
fn client_common_name<B>(request: &http::Request<B>) -> Option<String> {
    let info = request.extensions().get::<TlsConnectInfo<TcpConnectInfo>>()?;
    let chain = info.peer_certs()?;
    let (_, certificate) = x509_parser::parse_x509_certificate(chain.first()?.as_ref()).ok()?;
    let name = certificate.subject().iter_common_name().next()?.as_str().ok()?.to_string();
    Some(name)
}
