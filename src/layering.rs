//! The rooms of the crate and the only imports each may make: every arrow points down,
//! so the layering DESIGN.md describes is a test that fails, not a convention. Also: only
//! `registry` speaks HTTP to registries, only `scan` spawns processes, and nothing below
//! the worker knows the broker.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each room, and the rooms it may import. Lower rooms come first.
const ROOMS: &[(&str, &[&str])] = &[
    ("text", &[]),
    ("media_types", &[]),
    ("secret", &[]),
    ("cache", &[]),
    ("locks", &[]),
    ("handshake", &[]),
    ("server", &[]),
    ("digest", &["text"]),
    ("reference", &["digest", "text"]),
    ("tag_schema", &["digest", "reference", "text"]),
    ("oci", &["digest", "media_types", "text"]),
    ("artifact", &["digest", "media_types", "oci"]),
    (
        "registry",
        &[
            "artifact",
            "cache",
            "digest",
            "handshake",
            "locks",
            "media_types",
            "oci",
            "reference",
            "secret",
            "tag_schema",
            "text",
        ],
    ),
    (
        "sign",
        &[
            "artifact",
            "digest",
            "media_types",
            "oci",
            "reference",
            "secret",
            "tag_schema",
        ],
    ),
    (
        "trust",
        &[
            "artifact",
            "digest",
            "media_types",
            "oci",
            "reference",
            "registry",
            "sign",
            "tag_schema",
        ],
    ),
    ("scan", &["digest", "oci", "registry", "secret", "trust"]),
    (
        "records",
        &[
            "artifact",
            "digest",
            "media_types",
            "oci",
            "reference",
            "registry",
            "scan",
            "trust",
        ],
    ),
    (
        "catalog",
        &[
            "artifact",
            "cache",
            "digest",
            "media_types",
            "oci",
            "records",
            "reference",
            "registry",
            "scan",
            "sign",
            "tag_schema",
            "text",
            "trust",
        ],
    ),
    (
        "publish",
        &[
            "artifact",
            "catalog",
            "digest",
            "locks",
            "media_types",
            "oci",
            "records",
            "reference",
            "registry",
            "scan",
            "sign",
            "trust",
        ],
    ),
    ("broker", &["handshake", "locks", "secret"]),
    (
        "worker",
        &[
            "artifact",
            "broker",
            "catalog",
            "digest",
            "locks",
            "media_types",
            "oci",
            "publish",
            "records",
            "reference",
            "registry",
            "scan",
            "secret",
            "server",
            "trust",
        ],
    ),
    (
        "web",
        &[
            "cache",
            "catalog",
            "digest",
            "reference",
            "registry",
            "server",
            "trust",
        ],
    ),
    (
        "api",
        &["catalog", "digest", "oci", "reference", "scan", "web"],
    ),
    (
        "ui",
        &[
            "artifact",
            "catalog",
            "media_types",
            "oci",
            "reference",
            "scan",
            "trust",
            "web",
        ],
    ),
    ("app", &["api", "reference", "ui", "web"]),
];

/// Rooms above every other: the command line, the binary, the crate root, and this
/// test (which names what it looks for).
const TOP: &[&str] = &["cli", "main", "lib", "layering"];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of each room, comments left out, by room.
fn rooms() -> BTreeMap<String, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        let first = relative.components().next().unwrap().as_os_str();
        let room = first.to_str().unwrap().trim_end_matches(".rs").to_string();
        let text = std::fs::read_to_string(&file).unwrap();
        let code: String = text
            .lines()
            .map(|l| l.split("//").next().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n");
        out.entry(room).or_default().push_str(&code);
    }
    out
}

/// The rooms `code` names as `crate::ROOM`.
fn imports(code: &str, rooms: &BTreeSet<&str>) -> BTreeSet<String> {
    code.match_indices("crate::")
        .filter_map(|(at, _)| {
            let rest = &code[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            rooms.contains(name.as_str()).then_some(name)
        })
        .collect()
}

#[test]
fn rooms_import_only_downward() {
    let code = rooms();
    let known: BTreeSet<&str> = ROOMS
        .iter()
        .map(|(r, _)| *r)
        .chain(TOP.iter().copied())
        .collect();
    for room in code.keys() {
        assert!(
            known.contains(room.as_str()),
            "{room} is in no row of ROOMS"
        );
    }
    // The table itself points only down: each room imports rooms listed before it.
    for (i, (room, allowed)) in ROOMS.iter().enumerate() {
        for below in *allowed {
            let at = ROOMS.iter().position(|(r, _)| r == below);
            assert!(
                at.is_some_and(|at| at < i),
                "{room} may import {below}, which is not below it"
            );
        }
    }
    for (room, allowed) in ROOMS {
        let used = imports(&code[*room], &known);
        for other in &used {
            assert!(
                other == room || allowed.contains(&other.as_str()),
                "{room} imports {other}"
            );
        }
    }
}

#[test]
fn only_registry_speaks_http_to_registries_and_only_scan_spawns() {
    for (room, code) in rooms().into_iter().filter(|(r, _)| r != "layering") {
        if room != "registry" {
            assert!(!code.contains("reqwest::"), "{room} uses reqwest");
        }
        if room != "scan" {
            for spawn in ["process::Command", "Command::new", "tokio::process"] {
                assert!(!code.contains(spawn), "{room} spawns a process ({spawn})");
            }
        }
    }
}
