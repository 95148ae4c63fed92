//! The portable executable of rsdemo: the same plugin as the native library,
//! served over `oort.plugin.v1` (`cargo build -p rsdemo --features portable`).

fn main() {
    rsdemo::serve_portable()
}
