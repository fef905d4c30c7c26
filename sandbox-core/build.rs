//! Builds `init/init.c`, the sandbox's PID 1, as a tiny static freestanding executable that
//! the library embeds (`include_bytes!`) and executes from a sealed memfd. It needs only the
//! C compiler that Rust already uses as its linker on Linux.
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=init/init.c");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("sandbox-init");
    let compiler = cc::Build::new().get_compiler();
    let mut cmd: Command = compiler.to_command();
    cmd.args([
        "-Os",
        "-static",
        "-nostdlib",
        "-ffreestanding",
        "-fno-builtin",
        "-fno-stack-protector",
        "-fno-asynchronous-unwind-tables",
        "-fno-tree-loop-distribute-patterns",
        "-fno-pie",
        "-no-pie",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-Wl,--gc-sections",
        "-Wl,--build-id=none",
        "-s",
        "-o",
    ])
    .arg(&out)
    .arg("init/init.c");
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run the C compiler to build sandbox-init: {e}"));
    assert!(status.success(), "building init/init.c failed: {cmd:?}");
}
