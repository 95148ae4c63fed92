//! The runtime that external calls run on: [`IoRuntime`], shared with portable
//! plugins, lives in the engine (`oort_engine::io`).

pub use oort_engine::io::IoRuntime;
