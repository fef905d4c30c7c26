//! A spawn leaves the caller's dumpable setting as the caller has it: a caller that made
//! itself non-dumpable (so that processes of its uid cannot ptrace it or read its memory)
//! stays so after spawning a sandbox in its own user namespace. (A file of its own: the
//! setting is the whole process's.)

mod common;

use nix::sys::prctl::{get_dumpable, set_dumpable};
use sandbox_core::{Namespace, Sandbox};

#[tokio::test]
async fn a_spawn_in_the_callers_user_namespace_keeps_the_caller_non_dumpable() {
    common::require_root();
    let sandbox = Sandbox::new().share(Namespace::User);
    // A first spawn (the library reads the caller's setting once, then).
    assert!(sandbox
        .command("/bin/true")
        .status()
        .await
        .unwrap()
        .success());
    set_dumpable(false).unwrap();
    let after = sandbox.command("/bin/true").status().await;
    let dumpable = get_dumpable().unwrap();
    set_dumpable(true).unwrap();
    assert!(after.unwrap().success());
    assert!(!dumpable, "the spawn made the caller dumpable again");
}
