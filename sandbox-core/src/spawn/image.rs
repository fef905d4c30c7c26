//! An image root is imported into its cache before the plan is made.

use crate::{Error, Result, Sandbox};

/// Imports the sandbox's root into its cache when it is an image (and the sandbox has a
/// mount namespace to show it in); says whether it is one. Bad mounts are refused first,
/// before an image is imported (the plan checks them again for every other root; prepare
/// refuses a root without a mount namespace).
pub(super) async fn import_if_needed(sandbox: &Sandbox) -> Result<bool> {
    let image = matches!(sandbox.rootfs, sandbox_fs::Rootfs::Image { .. });
    if !image || !sandbox.creates(crate::Namespace::Mount) {
        return Ok(false);
    }
    sandbox_fs::check_mounts(&sandbox.mounts)?;
    import_image(&sandbox.rootfs).await?;
    Ok(true)
}

/// Imports an image root into its cache on a blocking thread (extraction may take seconds,
/// and must not hold up a runtime worker); the plan then finds it in the cache.
async fn import_image(rootfs: &sandbox_fs::Rootfs) -> Result<()> {
    use sandbox_fs::image::ImageCache;
    let sandbox_fs::Rootfs::Image { path, cache, .. } = rootfs else {
        return Ok(());
    };
    let cache = ImageCache::new(cache.clone().unwrap_or_else(ImageCache::default_dir));
    if cache.imported(path).is_some() {
        return Ok(());
    }
    let path = path.clone();
    tokio::task::spawn_blocking(move || cache.import(&path))
        .await
        .map_err(|e| Error::os("import the image", std::io::Error::other(e)))?
        .map_err(|e| Error::Fs(e.into()))?;
    Ok(())
}
