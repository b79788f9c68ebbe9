//! One child process with a deadline: output captured, killed when late, and never
//! outliving refcat or seeing its secrets.

use std::ffi::OsStr;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use super::ScanError;

/// What a scanner may inherit from refcat's environment: where things are, locale,
/// proxies, CA bundles, and its own settings. Everything else stays behind, above all
/// `COSIGN_PASSWORD`, `REFCAT_PASSWORD` and `REFCAT_WEBHOOK_SECRET`.
const INHERITED: [&str; 20] = [
    "PATH",
    "HOME",
    "USER",
    "TMPDIR",
    "LANG",
    "LC_ALL",
    "TZ",
    "XDG_CACHE_HOME",
    "XDG_CONFIG_HOME",
    "DOCKER_CONFIG",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// The prefix of a scan's scratch directory: `refcat-scan-<pid>-…` under the system's
/// temporary directory.
const SCRATCH: &str = "refcat-scan-";

/// A scratch directory for one scan, named after this process so that a later start
/// can tell it is left over. The scanner's own temporary files (syft unpacks image
/// layers) go in it too, through its `TMPDIR`.
pub(super) fn scratch() -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("{SCRATCH}{}-", std::process::id()))
        .tempdir()
}

/// Removes the scratch directories of refcat processes that are gone (killed mid-scan,
/// say): what their scanners unpacked would otherwise stay forever. How many.
pub fn remove_stale_scratch() -> usize {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(SCRATCH))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let alive = pid == std::process::id() || is_running(pid);
        if !alive && std::fs::remove_dir_all(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Whether process `pid` exists (signal 0 checks without sending anything; EPERM means
/// it exists but belongs to someone else). A pid that does not fit is not running.
fn is_running(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill with signal 0 only asks the kernel whether the process exists.
    let answer = unsafe { libc::kill(pid, 0) };
    answer == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// A command for `program` (syft or grype, whose own variables start with `prefix`)
/// with an environment built from an allow-list, and tied to refcat's life: on Linux
/// the kernel kills it when refcat dies, even by `kill -9`.
pub(super) fn command(program: &std::path::Path, prefix: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear();
    for (key, value) in std::env::vars_os() {
        if inherited(&key, prefix) {
            cmd.env(key, value);
        }
    }
    #[cfg(target_os = "linux")]
    // SAFETY: prctl is async-signal-safe, and nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// Makes `cmd` (syft or grype, whose variables start with `prefix`) trust the registry
/// certificates refcat trusts: the extra CAs as one PEM file in `dir`, the scan's
/// scratch directory, or no check at all when refcat skips it too.
pub(super) fn trust(
    cmd: &mut Command,
    prefix: &str,
    tls: &crate::registry::Tls,
    dir: &std::path::Path,
) -> std::io::Result<()> {
    if let Some(pem) = tls.ca_pem() {
        let path = dir.join("registry-ca.pem");
        std::fs::write(&path, pem)?;
        cmd.env(format!("{prefix}REGISTRY_CA_CERT"), path);
    }
    if tls.insecure() {
        cmd.env(format!("{prefix}REGISTRY_INSECURE_SKIP_TLS_VERIFY"), "true");
    }
    Ok(())
}

fn inherited(key: &OsStr, prefix: &str) -> bool {
    key.to_str()
        .is_some_and(|k| INHERITED.contains(&k) || k.starts_with("LC_") || k.starts_with(prefix))
}

/// What a finished process printed.
pub(super) struct Finished {
    pub stdout: Vec<u8>,
}

/// Runs `cmd` to completion within `timeout`; a non-zero exit is an error carrying the
/// tail of its standard error.
pub(super) async fn run(
    tool: &'static str,
    mut cmd: Command,
    what: &str,
    timeout: Duration,
) -> Result<Finished, ScanError> {
    let program = std::path::PathBuf::from(cmd.as_std().get_program());
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd
        .spawn()
        .map_err(|source| ScanError::Spawn { program, source })?;
    tracing::debug!(tool, what, "started");
    let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Err(_) => {
            return Err(ScanError::Timeout {
                tool,
                what: what.to_string(),
                timeout,
            })
        }
        Ok(result) => result.map_err(|source| ScanError::Io { tool, source })?,
    };
    if !output.status.success() {
        return Err(ScanError::Failed {
            tool,
            what: what.to_string(),
            status: output.status.to_string(),
            stderr: tail(&output.stderr),
        });
    }
    Ok(Finished {
        stdout: output.stdout,
    })
}

/// The last few lines of `stderr`, enough to say why without flooding a log.
fn tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(5);
    let joined = lines[start..].join(" | ");
    match joined.char_indices().nth(600) {
        Some((cut, _)) => format!("{}…", &joined[..cut]),
        None => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_stay_behind_and_the_tools_own_settings_pass() {
        for secret in [
            "COSIGN_PASSWORD",
            "REFCAT_PASSWORD",
            "REFCAT_WEBHOOK_SECRET",
            "AWS_SECRET_ACCESS_KEY",
        ] {
            assert!(!inherited(OsStr::new(secret), "SYFT_"), "{secret}");
        }
        for passed in ["PATH", "HTTPS_PROXY", "LC_CTYPE", "SYFT_PARALLELISM"] {
            assert!(inherited(OsStr::new(passed), "SYFT_"), "{passed}");
        }
        assert!(!inherited(OsStr::new("GRYPE_DB_CACHE_DIR"), "SYFT_"));
    }

    #[test]
    fn only_live_processes_count_as_running() {
        assert!(is_running(std::process::id()));
        assert!(is_running(1), "init exists, though it may not be ours");
        assert!(!is_running(u32::MAX));
    }
}
