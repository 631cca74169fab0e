//! Compiles the top-level proto/ with the vendored protoc, so a build needs no system protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; nothing else reads the environment here.
    unsafe { std::env::set_var("PROTOC", protoc) };
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    // The client API alone first, for the client port's reflection; the second run writes
    // the same code for it again, plus the Raft proto's.
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("raftsched_v1_descriptor.bin"))
        .compile_protos(&["../../proto/raftsched.proto"], &["../../proto"])?;
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("raftsched_descriptor.bin"))
        .compile_protos(
            &["../../proto/raftsched.proto", "../../proto/raft.proto"],
            &["../../proto"],
        )?;
    // serde impls in the proto3 JSON mapping for the client API's messages, for the
    // console's HTTP API (the Raft proto stays binary-only).
    let descriptors = std::fs::read(out_dir.join("raftsched_v1_descriptor.bin"))?;
    // Fields at their default value are written too (`"created": false`, `"leaderId": "0"`):
    // scripts reading the CLI's JSON find every field, as the table shows every column.
    pbjson_build::Builder::new()
        .register_descriptors(&descriptors)?
        .emit_fields()
        .build(&[".raftsched.v1"])?;
    println!("cargo:rerun-if-changed=../../proto");
    Ok(())
}
