//! The catalogues this binary was built with, carried inside it (see `build.rs`): a binary
//! installed alone unpacks them once into a cache folder named by their digest, and reads them
//! from there like any other catalogue folder.

use std::path::{Path, PathBuf};

include!(concat!(env!("OUT_DIR"), "/embedded_files.rs"));

/// Where the embedded catalogues are unpacked: `$XDG_CACHE_HOME`, else `~/.cache`, else the
/// temporary folder, under `authmd-conformance/<version>-<digest>`.
pub fn cache_folder() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })
        .unwrap_or_else(std::env::temp_dir);
    base.join("authmd-conformance")
        .join(format!("{}-{DIGEST}", env!("CARGO_PKG_VERSION")))
}

/// The folder holding the embedded catalogues, unpacked into `folder` unless a complete copy is
/// already there. The copy is written beside it and renamed into place, so a run that stops
/// half-way, or two runs at once, never leave a partial catalogue to read.
pub fn unpack(folder: &Path) -> std::io::Result<PathBuf> {
    if folder.join(COMPLETE).is_file() {
        return Ok(folder.to_path_buf());
    }
    // Copies are marked complete before they are renamed into place, so an unmarked folder was
    // left by something else (a hand edit, a disk that filled): it is replaced, never read.
    if folder.exists() {
        std::fs::remove_dir_all(folder)?;
    }
    let parent = folder.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let partial = parent.join(format!(".partial-{}-{nanos}", std::process::id()));
    let written = write_all(&partial);
    let placed = written.and_then(|()| std::fs::rename(&partial, folder));
    if placed.is_err() {
        let _ = std::fs::remove_dir_all(&partial);
    }
    // Another run may have placed its copy first: the same bytes, so it serves.
    match placed {
        Ok(()) => Ok(folder.to_path_buf()),
        Err(_) if folder.join(COMPLETE).is_file() => Ok(folder.to_path_buf()),
        Err(e) => Err(e),
    }
}

/// Written last: a folder without it is not a catalogue to read.
const COMPLETE: &str = ".complete";

fn write_all(into: &Path) -> std::io::Result<()> {
    for (name, bytes) in FILES {
        let path = into.join(name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, bytes)?;
    }
    std::fs::write(into.join(COMPLETE), DIGEST)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_catalogues_are_the_checkouts_files() {
        let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        assert!(FILES.iter().any(|(n, _)| *n == "profiles/v0.1.toml"));
        assert!(FILES.iter().any(|(n, _)| n.starts_with("cases-aid/")));
        for (name, bytes) in FILES {
            assert_eq!(std::fs::read(checkout.join(name)).ok().as_deref(), Some(*bytes), "{name}");
        }
    }

    #[test]
    fn unpacking_twice_reuses_the_complete_copy_and_ignores_a_partial_one() {
        let base = std::env::temp_dir().join(format!("authmd-embedded-{}", std::process::id()));
        let folder = base.join("copy");
        // A folder without the completion mark is replaced, not read.
        std::fs::create_dir_all(folder.join("profiles")).expect("dir");
        std::fs::write(folder.join("profiles/stale.toml"), "x").expect("write");
        let first = unpack(&folder).expect("unpack");
        assert!(!first.join("profiles/stale.toml").exists(), "the unmarked copy was replaced");
        assert_eq!(
            std::fs::read(first.join("profiles/v0.1.toml")).ok().as_deref(),
            FILES.iter().find(|(n, _)| *n == "profiles/v0.1.toml").map(|(_, b)| *b)
        );
        std::fs::write(first.join("profiles/marker"), "kept").expect("write");
        let second = unpack(&folder).expect("again");
        assert!(second.join("profiles/marker").is_file(), "the complete copy was reused");
        let leftovers = std::fs::read_dir(&base).expect("list").count();
        assert_eq!(leftovers, 1, "no partial copy left beside it");
        let _ = std::fs::remove_dir_all(&base);
    }
}
