//! Attestations as `cosign attest` makes them, for the provenance tests.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use super::{run_ok, tool, KEY_PASSWORD};

/// An SLSA v1 provenance predicate naming `repository` at `commit`.
pub fn slsa_v1(repository: &str, commit: &str) -> Value {
    json!({
        "buildDefinition": {
            "buildType": "https://actions.github.io/buildtypes/workflow/v1",
            "externalParameters": { "workflow": { "ref": "refs/heads/main", "repository": repository } },
            "resolvedDependencies": [{ "uri": format!("git+{repository}@refs/heads/main"), "digest": { "gitCommit": commit } }]
        },
        "runDetails": {
            "builder": { "id": "https://github.com/actions/runner" },
            "metadata": { "startedOn": "2026-11-01T10:00:00Z", "finishedOn": "2026-11-01T10:04:00Z" }
        }
    })
}

/// `cosign attest` of an SLSA v1 predicate, offline, in the bundle or the legacy layout.
pub fn cosign_attest(dir: &Path, key: &str, reference: &str, predicate: &Value, bundle: bool) {
    let file = dir.join(format!(
        "predicate-{}.json",
        reference.len() + usize::from(bundle)
    ));
    std::fs::write(&file, predicate.to_string()).unwrap();
    run_ok(
        Command::new(tool("cosign"))
            .current_dir(dir)
            .env("COSIGN_PASSWORD", KEY_PASSWORD)
            .env("COSIGN_YES", "true")
            .args([
                "attest",
                "--key",
                key,
                "--type",
                "slsaprovenance1",
                "--predicate",
            ])
            .arg(&file)
            .args([
                "--tlog-upload=false",
                "--use-signing-config=false",
                "--allow-http-registry",
                &format!("--new-bundle-format={bundle}"),
                reference,
            ]),
    );
}
