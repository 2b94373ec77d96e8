//! Embeds the catalogues (cases, profiles, checks, deployments) in the library, so a binary
//! installed alone (an installer, `cargo install`) carries the data it was built with and
//! unpacks it on first use. A release archive and a checkout still keep them as files beside.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The data folders, relative to the workspace root.
const DATA: &[&str] = &[
    "cases",
    "cases-v0.6",
    "cases-v0.7",
    "cases-v0.7-production",
    "cases-aid",
    "profiles",
    "checks",
    "deployments",
];

fn main() {
    let root = Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo")).join("..");
    let mut files = Vec::new();
    for dir in DATA {
        println!("cargo:rerun-if-changed=../{dir}");
        walk(&root, &root.join(dir), &mut files);
    }
    files.sort();
    // FNV-1a over names and contents: the unpacked copy's folder is named by it, so a binary
    // never reads a copy another build unpacked.
    let mut digest: u64 = 0xcbf2_9ce4_8422_2325;
    let mut table =
        String::from("/// Every embedded data file: its path from the root, and its bytes.\npub static FILES: &[(&str, &[u8])] = &[\n");
    for (name, path) in &files {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for b in name.bytes().chain([0]).chain(bytes.iter().copied()) {
            digest = (digest ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        let absolute = path.canonicalize().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let _ = writeln!(table, "    ({name:?}, include_bytes!({:?})),", absolute.display().to_string());
    }
    table.push_str("];\n");
    let _ = writeln!(
        table,
        "/// A digest of every name and content above.\npub const DIGEST: &str = \"{digest:016x}\";"
    );
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("embedded_files.rs");
    std::fs::write(out, table).expect("write the embedded table");
}

/// Every file under `dir`, named from `root` with `/` separators.
fn walk(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(root, &path, files);
        } else if path.is_file() {
            let name = path
                .strip_prefix(root)
                .expect("under the root")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            files.push((name, path));
        }
    }
}
