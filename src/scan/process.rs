//! One child process with a deadline: output captured, killed when late.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use super::ScanError;

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
