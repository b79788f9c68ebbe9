//! Launchers in front of the real scanners: they note, count or hold scans, then run
//! the pinned syft or grype with the same arguments.

use super::tool;

/// A launcher for the real syft that, for a scan, first notes its environment and then its
/// pid in `dir` (each file renamed into place whole, so a test that has seen the pid reads
/// this scan's environment) and waits `pause` seconds, then runs syft with the same arguments.
pub fn observed_syft(dir: &std::path::Path, pause: u32) -> std::path::PathBuf {
    let launcher = dir.join("syft");
    let script = format!(
        "#!/bin/sh\nif [ \"$1\" = scan ]; then\n  env > '{dir}/env.part' && mv '{dir}/env.part' '{dir}/env'\n  echo $$ > '{dir}/pid.part' && mv '{dir}/pid.part' '{dir}/pid'\n  sleep {pause}\nfi\nexec '{syft}' \"$@\"\n",
        dir = dir.display(),
        syft = tool("syft").display(),
    );
    write_script(&launcher, &script);
    launcher
}

/// A launcher for the real syft that notes each scan as a line of `dir/scans` and
/// refuses every scan after the first `allowed` (exit 1), so that a scan too many fails
/// the run at once.
pub fn counted_syft(dir: &std::path::Path, allowed: usize) -> std::path::PathBuf {
    let launcher = dir.join("syft");
    let script = format!(
        "#!/bin/sh\nif [ \"$1\" = scan ]; then\n  echo \"$@\" >> '{dir}/scans'\n  if [ \"$(wc -l < '{dir}/scans')\" -gt {allowed} ]; then echo 'one scan too many' >&2; exit 1; fi\nfi\nexec '{syft}' \"$@\"\n",
        dir = dir.display(),
        syft = tool("syft").display(),
    );
    write_script(&launcher, &script);
    launcher
}

/// A launcher for the real grype that notes each match run (not `version` or `db …`) as
/// a line of `dir/grype-runs`.
pub fn counted_grype(dir: &std::path::Path) -> std::path::PathBuf {
    let launcher = dir.join("grype");
    let script = format!(
        "#!/bin/sh\ncase \"$1\" in version|db) ;; *) echo \"$@\" >> '{dir}/grype-runs' ;; esac\nexec '{grype}' \"$@\"\n",
        dir = dir.display(),
        grype = tool("grype").display(),
    );
    write_script(&launcher, &script);
    launcher
}

/// How many lines `dir/name` holds (0 when it does not exist): runs a launcher counted.
pub fn runs(dir: &std::path::Path, name: &str) -> usize {
    std::fs::read_to_string(dir.join(name))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// A launcher for the real syft whose scans wait while the file `hold` in `dir` exists
/// (a test creates and removes it to keep a replica busy); the launcher's path and the
/// hold file's.
pub fn held_syft(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (launcher, hold) = (dir.join("syft"), dir.join("hold"));
    let script = format!(
        "#!/bin/sh\nwhile [ \"$1\" = scan ] && [ -f '{hold}' ]; do sleep 0.2; done\nexec '{syft}' \"$@\"\n",
        hold = hold.display(),
        syft = tool("syft").display(),
    );
    write_script(&launcher, &script);
    (launcher, hold)
}

/// Writes an executable shell script.
pub fn write_script(path: &std::path::Path, script: &str) {
    std::fs::write(path, script).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}
