//! The sandbox's filesystem: [`mount_op`] replays the plan's mount steps. Paths inside the
//! new root are resolved by fd, component by component (`openat2` with `RESOLVE_IN_ROOT`),
//! and mounts are made with the new mount API (`open_tree`, `fsopen`, `move_mount`,
//! `mount_setattr`).

use super::syscall::{chdir, close, dup, open, sys, write_all, Fd};
use core::ffi::CStr;
use libc::{c_int, c_uint};
use sandbox_fs::kernel::{
    MountAttr, OpenHow, AT_RECURSIVE, FSCONFIG_CMD_CREATE, FSCONFIG_SET_FLAG, FSCONFIG_SET_STRING,
    FSMOUNT_CLOEXEC, FSOPEN_CLOEXEC, MOVE_MOUNT_F_EMPTY_PATH, MOVE_MOUNT_T_EMPTY_PATH,
    OPEN_TREE_CLOEXEC, OPEN_TREE_CLONE, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS,
    RESOLVE_NO_SYMLINKS,
};
use sandbox_fs::plan::{FsOption, InRoot, Op, Target, TargetKind};

fn opt(s: &Option<std::ffi::CString>) -> *const libc::c_char {
    match s {
        Some(s) => s.as_ptr(),
        None => core::ptr::null(),
    }
}

fn mount(
    source: *const libc::c_char,
    target: &CStr,
    fstype: *const libc::c_char,
    flags: libc::c_ulong,
    data: *const libc::c_char,
) -> Result<(), c_int> {
    sys!(
        libc::SYS_mount,
        source,
        target.as_ptr(),
        fstype,
        flags,
        data
    )
    .map(drop)
}

/// `openat2(dir, path, O_PATH, RESOLVE_IN_ROOT)`: `path` resolved as if `dir` were `/`.
fn open_in_root(root: c_int, path: &CStr) -> Result<Fd, c_int> {
    let how = OpenHow {
        flags: (libc::O_PATH | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    sys!(
        libc::SYS_openat2,
        root,
        path.as_ptr(),
        &how as *const OpenHow,
        core::mem::size_of::<OpenHow>()
    )
    .map(|fd| Fd(fd as c_int))
}

/// Creates `name` in `dir` (a directory, or an empty file), not following a symlink that
/// may already be there. An existing entry is fine.
fn create_in(dir: &Fd, name: &CStr, kind: TargetKind, mode: libc::mode_t) -> Result<(), c_int> {
    let r = match kind {
        TargetKind::Dir => sys!(libc::SYS_mkdirat, dir.0, name.as_ptr(), mode).map(drop),
        TargetKind::File => sys!(
            libc::SYS_openat,
            dir.0,
            name.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            mode
        )
        .map(|fd| close(fd as c_int)),
    };
    match r {
        Err(libc::EEXIST) => Ok(()),
        r => r,
    }
}

/// Opens (creating what is missing, when asked) a path inside the root, one component at
/// a time, each resolved with `RESOLVE_IN_ROOT`: whatever symlinks the tree holds, the
/// result is inside it.
fn resolve(root: c_int, t: &InRoot, mode: libc::mode_t) -> Result<Fd, c_int> {
    walk(root, t, t.depth(), t.kind(), mode)
}

/// [`resolve`] of the first `upto` components, the last of them being of kind `kind`.
fn walk(
    root: c_int,
    t: &InRoot,
    upto: usize,
    kind: TargetKind,
    mode: libc::mode_t,
) -> Result<Fd, c_int> {
    // Most targets exist: one lookup of the whole path. Only a missing one is walked
    // component by component to create what is missing.
    if let Some((full, _)) = t.steps().nth(upto.wrapping_sub(1)) {
        match open_in_root(root, full) {
            Err(libc::ENOENT) if t.create() => {}
            r => return r,
        }
    }
    let mut parent: Option<Fd> = None;
    for (i, (prefix, name)) in (1..).zip(t.steps().take(upto)) {
        let last = i == upto;
        let fd = match open_in_root(root, prefix) {
            Err(libc::ENOENT) if t.create() => {
                let (k, m) = if last {
                    (kind, mode)
                } else {
                    (TargetKind::Dir, 0o755)
                };
                match &parent {
                    Some(p) => create_in(p, name, k, m)?,
                    None => create_in(&Fd(dup(root)?), name, k, m)?,
                }
                open_in_root(root, prefix)?
            }
            r => r?,
        };
        parent = Some(fd);
    }
    parent.ok_or(libc::EINVAL)
}

/// The fd a mount is moved onto; `None` when an optional target is missing.
fn target_fd(root: c_int, t: &Target) -> Result<Option<Fd>, c_int> {
    match t {
        Target::Staging(path) => {
            let fd = open(path, libc::O_PATH | libc::O_NOFOLLOW, 0)?;
            Ok(Some(Fd(fd)))
        }
        Target::Root(t) => match resolve(root, t, 0o755) {
            Ok(fd) => Ok(Some(fd)),
            Err(libc::ENOENT | libc::EROFS | libc::EACCES | libc::EPERM | libc::ENOTDIR)
                if t.is_optional() =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        },
    }
}

fn set_attr(tree: &Fd, attr: u64, recursive: bool) -> Result<(), c_int> {
    if attr == 0 {
        return Ok(());
    }
    let a = MountAttr {
        attr_set: attr,
        ..Default::default()
    };
    let rec = if recursive { AT_RECURSIVE } else { 0 };
    sys!(
        libc::SYS_mount_setattr,
        tree.0,
        c"".as_ptr(),
        libc::AT_EMPTY_PATH as c_uint | rec,
        &a as *const MountAttr,
        core::mem::size_of::<MountAttr>()
    )
    .map(drop)
}

/// `open_tree(OPEN_TREE_CLONE)`: a detached copy of the mount at `path` (relative to `dir`).
fn clone_tree(dir: c_int, path: &CStr, flags: c_uint) -> Result<Fd, c_int> {
    sys!(
        libc::SYS_open_tree,
        dir,
        path.as_ptr(),
        OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | flags
    )
    .map(|fd| Fd(fd as c_int))
}

fn move_onto(tree: &Fd, target: &Fd) -> Result<(), c_int> {
    sys!(
        libc::SYS_move_mount,
        tree.0,
        c"".as_ptr(),
        target.0,
        c"".as_ptr(),
        MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH
    )
    .map(drop)
}

fn fresh(fstype: &CStr, options: &[FsOption], attr: u64) -> Result<Fd, c_int> {
    let fs = Fd(sys!(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC)? as c_int);
    for o in options {
        match &o.value {
            Some(v) => sys!(
                libc::SYS_fsconfig,
                fs.0,
                FSCONFIG_SET_STRING,
                o.key.as_ptr(),
                v.as_ptr(),
                0
            )?,
            None => sys!(
                libc::SYS_fsconfig,
                fs.0,
                FSCONFIG_SET_FLAG,
                o.key.as_ptr(),
                0,
                0
            )?,
        };
    }
    sys!(libc::SYS_fsconfig, fs.0, FSCONFIG_CMD_CREATE, 0, 0, 0)?;
    sys!(libc::SYS_fsmount, fs.0, FSMOUNT_CLOEXEC, attr).map(|fd| Fd(fd as c_int))
}

fn write_file(path: &CStr, contents: &[u8], mode: libc::mode_t) -> Result<(), c_int> {
    let fd = Fd(open(
        path,
        libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_NOFOLLOW,
        mode,
    )?);
    write_all(fd.0, contents)?;
    // The umask may have narrowed the mode.
    sys!(libc::SYS_fchmod, fd.0, mode).map(drop)
}

/// Builds the sandbox's filesystem: replays the plan's steps. `root` is the new root's
/// directory once [`Op::OpenRoot`] ran.
pub(super) fn mount_op(op: &Op, root: &mut Option<Fd>) -> Result<(), c_int> {
    let null = core::ptr::null();
    let root_fd = || root.as_ref().map_or(-1, |f| f.0);
    match op {
        Op::MakePrivate => mount(null, c"/", null, libc::MS_REC | libc::MS_PRIVATE, null),
        Op::Stage => stage(),
        Op::Mount {
            source,
            target,
            fstype,
            flags,
            data,
            optional,
        } => mount_trusted(source, target, fstype, *flags, data, *optional),
        Op::Touch { path } => touch_staged(path),
        Op::Link { points_to, path } => symlink_staged(points_to, path),
        Op::Move { from, to } => move_staged(root_fd(), from, to),
        Op::Mkdir { path, mode } => mkdir_staged(path, *mode),
        Op::WriteFile {
            path,
            contents,
            mode,
        } => write_file(path, contents, *mode),
        Op::Attach { fd, path, .. } => attach(*fd, path),
        Op::OpenRoot { path } => {
            *root = Some(open_root(path)?);
            Ok(())
        }
        Op::Bind {
            source,
            target,
            recursive,
            attr,
        } => bind(root_fd(), source, target, *recursive, *attr),
        Op::Fresh {
            fstype,
            options,
            target,
            attr,
        } => mount_fresh(root_fd(), fstype, options, target, *attr),
        Op::MakeDir { target, mode } => resolve(root_fd(), target, *mode).map(drop),
        Op::Symlink { points_to, link } => symlink_in_root(root_fd(), points_to, link),
        Op::ReadOnly { target } => read_only(root_fd(), target),
        Op::SealRoot => seal_root(root.as_ref().ok_or(libc::EINVAL)?),
        Op::EnterRoot => enter_root(root.take().ok_or(libc::EINVAL)?),
        _ => Err(libc::EINVAL),
    }
}

/// [`Op::Stage`]: a tmpfs on `/tmp`, and `pivot_root` into it with the old root at
/// `/oldroot`.
fn stage() -> Result<(), c_int> {
    mount(
        c"tmpfs".as_ptr(),
        c"/tmp",
        c"tmpfs".as_ptr(),
        libc::MS_NOSUID | libc::MS_NODEV,
        c"mode=755".as_ptr(),
    )?;
    chdir(c"/tmp")?;
    sys!(
        libc::SYS_mkdirat,
        libc::AT_FDCWD,
        c"oldroot".as_ptr(),
        0o755
    )?;
    sys!(
        libc::SYS_mkdirat,
        libc::AT_FDCWD,
        c"newroot".as_ptr(),
        0o755
    )?;
    sys!(libc::SYS_pivot_root, c".".as_ptr(), c"oldroot".as_ptr())?;
    chdir(c"/")
}

/// [`Op::Mount`]: `mount(2)` on a trusted path; a missing optional target is skipped.
fn mount_trusted(
    source: &Option<std::ffi::CString>,
    target: &CStr,
    fstype: &Option<std::ffi::CString>,
    flags: libc::c_ulong,
    data: &Option<std::ffi::CString>,
    optional: bool,
) -> Result<(), c_int> {
    match mount(opt(source), target, opt(fstype), flags, opt(data)) {
        Err(libc::ENOENT) if optional => Ok(()),
        r => r,
    }
}

/// [`Op::Touch`]: an empty file in the staging area.
fn touch_staged(path: &CStr) -> Result<(), c_int> {
    let fd = open(
        path,
        libc::O_WRONLY | libc::O_CREAT | libc::O_NOFOLLOW,
        0o644,
    )?;
    close(fd);
    Ok(())
}

/// [`Op::Link`]: a symbolic link in the staging area.
fn symlink_staged(points_to: &CStr, path: &CStr) -> Result<(), c_int> {
    sys!(
        libc::SYS_symlinkat,
        points_to.as_ptr(),
        libc::AT_FDCWD,
        path.as_ptr()
    )
    .map(drop)
}

/// [`Op::Move`]: a mount built in the staging area moved onto its target.
fn move_staged(root: c_int, from: &CStr, to: &Target) -> Result<(), c_int> {
    let Some(t) = target_fd(root, to)? else {
        return Ok(());
    };
    sys!(
        libc::SYS_move_mount,
        libc::AT_FDCWD,
        from.as_ptr(),
        t.0,
        c"".as_ptr(),
        MOVE_MOUNT_T_EMPTY_PATH
    )
    .map(drop)
}

/// [`Op::Mkdir`]: a directory in the staging area, with its exact mode.
fn mkdir_staged(path: &CStr, mode: libc::mode_t) -> Result<(), c_int> {
    match sys!(libc::SYS_mkdirat, libc::AT_FDCWD, path.as_ptr(), mode) {
        Err(libc::EEXIST) => Ok(()),
        // The umask is 0 here; only the sticky bit needs a chmod.
        Ok(_) if mode & 0o7000 != 0 => {
            sys!(libc::SYS_fchmodat, libc::AT_FDCWD, path.as_ptr(), mode).map(drop)
        }
        r => r.map(drop),
    }
}

/// [`Op::Attach`]: a detached tree the parent made, attached at a staging path; its fd is
/// closed.
fn attach(fd: c_int, path: &CStr) -> Result<(), c_int> {
    let target = Fd(open(path, libc::O_PATH | libc::O_NOFOLLOW, 0)?);
    let r = sys!(
        libc::SYS_move_mount,
        fd,
        c"".as_ptr(),
        target.0,
        c"".as_ptr(),
        MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH
    );
    close(fd);
    r.map(drop)
}

/// [`Op::OpenRoot`]: the new root's directory, which every later target is resolved in.
fn open_root(path: &CStr) -> Result<Fd, c_int> {
    let fd = open(path, libc::O_PATH | libc::O_DIRECTORY, 0)?;
    Ok(Fd(fd))
}

/// [`Op::Bind`]: a copy of a trusted source's mount, with its attributes, moved onto the
/// target.
fn bind(
    root: c_int,
    source: &CStr,
    target: &Target,
    recursive: bool,
    attr: u64,
) -> Result<(), c_int> {
    let Some(t) = target_fd(root, target)? else {
        return Ok(());
    };
    // The parent canonicalised the source: a symlink on its path now means the
    // tree changed since (another sandbox swapped a directory for a link).
    let how = OpenHow {
        flags: (libc::O_PATH | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_NO_SYMLINKS,
    };
    let src = Fd(sys!(
        libc::SYS_openat2,
        libc::AT_FDCWD,
        source.as_ptr(),
        &how as *const OpenHow,
        core::mem::size_of::<OpenHow>()
    )? as c_int);
    let rec = if recursive { AT_RECURSIVE } else { 0 };
    let tree = clone_tree(src.0, c"", libc::AT_EMPTY_PATH as c_uint | rec)?;
    set_attr(&tree, attr, recursive)?;
    move_onto(&tree, &t)
}

/// [`Op::Fresh`]: a new filesystem moved onto the target.
fn mount_fresh(
    root: c_int,
    fstype: &CStr,
    options: &[FsOption],
    target: &Target,
    attr: u64,
) -> Result<(), c_int> {
    let Some(t) = target_fd(root, target)? else {
        return Ok(());
    };
    let m = fresh(fstype, options, attr)?;
    move_onto(&m, &t)
}

/// [`Op::Symlink`]: a symbolic link inside the root (an existing one is fine).
fn symlink_in_root(root: c_int, points_to: &CStr, link: &InRoot) -> Result<(), c_int> {
    // The parent directory, resolved in the root; the link itself is created there
    // (symlinkat never follows the name it creates).
    let depth = link.depth();
    let parent = if depth > 1 {
        walk(root, link, depth.saturating_sub(1), TargetKind::Dir, 0o755)
    } else {
        dup(root).map(Fd)
    };
    let r = parent.and_then(|parent| {
        sys!(
            libc::SYS_symlinkat,
            points_to.as_ptr(),
            parent.0,
            link.name().as_ptr()
        )
    });
    match r {
        Err(libc::EEXIST) => Ok(()),
        Err(_) if link.is_optional() => Ok(()),
        r => r.map(drop),
    }
}

/// [`Op::ReadOnly`]: a path of the root bound onto itself, read-only.
fn read_only(root: c_int, target: &InRoot) -> Result<(), c_int> {
    let t = match resolve(root, target, 0) {
        Ok(t) => t,
        Err(libc::ENOENT) if target.is_optional() => return Ok(()),
        Err(e) => return Err(e),
    };
    let tree = clone_tree(t.0, c"", libc::AT_EMPTY_PATH as c_uint | AT_RECURSIVE)?;
    set_attr(&tree, sandbox_fs::kernel::MOUNT_ATTR_RDONLY, true)?;
    move_onto(&tree, &t)
}

/// [`Op::SealRoot`]: the new root's own mount made read-only.
fn seal_root(root: &Fd) -> Result<(), c_int> {
    set_attr(root, sandbox_fs::kernel::MOUNT_ATTR_RDONLY, false)
}

/// [`Op::EnterRoot`]: the new root becomes `/`; the staging area and the host's tree are
/// detached.
fn enter_root(root: Fd) -> Result<(), c_int> {
    // pivot_root(".", ".") stacks the old root on top of the new one; detaching it
    // (after making it a slave, so the detach does not propagate) leaves the new.
    let null = core::ptr::null();
    sys!(libc::SYS_fchdir, root.0)?;
    drop(root);
    sys!(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr())?;
    mount(null, c".", null, libc::MS_SLAVE | libc::MS_REC, null)?;
    sys!(libc::SYS_umount2, c".".as_ptr(), libc::MNT_DETACH)?;
    chdir(c"/")
}
