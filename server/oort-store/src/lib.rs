//! Oort's catalog: what the server must remember across restarts.
//!
//! - [`record`]: the versioned envelope every stored value is wrapped in, so a
//!   later format can migrate older records on read.
//! - [`catalog`]: the [`Catalog`] trait the server codes against, so that the shared
//!   store can replace the embedded one.
//! - [`sled_catalog`]: [`SledCatalog`], the embedded default; one sled tree per kind.
//! - [`etcd_catalog`]: [`EtcdCatalog`], the catalog several `oortd` share, in etcd;
//!   [`ownership`]: one owner per rule among them, by etcd leases; the
//!   client's calls kept off members that are down (`etcd_members`).
//! - [`error`]: [`StoreError`], why a catalog call failed.

pub mod catalog;
pub mod error;
pub mod etcd_catalog;
mod etcd_members;
pub mod ownership;
pub mod record;
pub mod sled_catalog;
#[cfg(test)]
mod suite;

pub use catalog::{Catalog, CatalogChange};
pub use error::{EntityKind, StoreError};
pub use etcd_catalog::{EtcdCatalog, EtcdConfig};
pub use ownership::{Ownership, OwnershipEvent};
pub use record::PluginRecord;
pub use record::ServiceRecord;
pub use sled_catalog::{SledCatalog, SledConfig};
