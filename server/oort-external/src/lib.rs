//! External functions: existing gRPC, REST and tarpc services, described by
//! their `.proto` files (eKuiper's service description), called from SQL with
//! no code to write.
//!
//! - [`description`]: the description model and eKuiper's JSON service file.
//! - [`schema`]: `.proto` files compiled at run time (protox → prost-reflect).
//! - [`mapping`]: SQL arguments → request message, response → SQL value.
//! - [`grpc`], [`rest`], [`tarpc_service`]: the three invokers.
//! - [`function`]: [`ExternalFunction`], a method as an engine `Function`.
//! - [`services`]: [`ExternalServices`], the registered services and their functions.
//! - [`error`]: [`ExternalError`] (registering) and [`CallError`] (calling).

pub mod description;
pub mod error;
pub mod function;
pub mod grpc;
pub mod mapping;
pub mod rest;
pub mod schema;
pub mod services;
pub mod tarpc_service;

pub use description::Description;
pub use error::{CallError, ExternalError};
pub use function::{CallObserver, ExternalFunction};
pub use services::{AddressPolicy, ExternalServices, Prepared, ServiceDef};
