//! Compiles every `.proto` under `proto/polyshop` into prost messages and tonic clients and
//! servers, and writes the FileDescriptorSet (imports included) that servers use for
//! reflection and access rules and the edge uses for transcoding.

use std::{
    error::Error,
    path::{Path, PathBuf},
};

fn main() -> Result<(), Box<dyn Error>> {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut protos = Vec::new();
    collect_protos(Path::new("proto/polyshop"), &mut protos)?;
    protos.sort();
    // The error details every service sends, so reflection and the edge can decode them.
    protos.push(PathBuf::from("proto/google/rpc/error_details.proto"));
    protos.push(PathBuf::from("proto/google/rpc/status.proto"));

    let mut config = tonic_prost_build::Config::new();
    // The vendored protoc: no system protoc needed, and no `PROTOC` env var (unsafe to set in
    // edition 2024).
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    // `prost::Name` on every message: events find their subject by full name.
    config.enable_type_names();
    let well_known = protoc_bin_vendored::include_path()?;

    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("polyshop_descriptor.bin"))
        .compile_with_config(config, &protos, &[PathBuf::from("proto"), well_known])?;

    println!("cargo:rerun-if-changed=proto");
    Ok(())
}

fn collect_protos(dir: &Path, into: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, into)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            println!("cargo:rerun-if-changed={}", path.display());
            into.push(path);
        }
    }
    Ok(())
}
