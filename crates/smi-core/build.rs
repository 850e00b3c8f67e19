//! Generates the control API's protobuf types and tonic stubs when the `proto` feature is on.
//! protox compiles the .proto in Rust, so no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    #[cfg(feature = "proto")]
    {
        let fds = protox::compile(["smi/control/v1/control.proto"], ["proto"])?;
        tonic_prost_build::configure()
            .build_transport(false)
            .compile_fds(fds)?;
    }
    Ok(())
}
