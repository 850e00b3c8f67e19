//! Generates the etcd v3 client stubs (`proto/etcd/v3.proto`, the part of etcd's API the control
//! uses). protox compiles the .proto in Rust, so no system `protoc` is needed, as for the
//! control API in smi-core.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(["etcd/v3.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_server(false)
        .compile_fds(fds)?;
    Ok(())
}
