//! Compiles the IPC protocol (`proto/daemoneye/ipc/v1/ipc.proto`) into Rust with prost.
//!
//! The `.proto` is parsed by `protox`, a protobuf compiler written in Rust, so that building
//! DaemonEye needs no system `protoc`: an air-gapped build host has only the vendored crates.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    if std::env::var_os("CARGO_FEATURE_IPC").is_none() {
        return Ok(());
    }
    let descriptors = protox::compile(["daemoneye/ipc/v1/ipc.proto"], ["proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
