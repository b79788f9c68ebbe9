//! Benchmark of `refcat publish` against the hand-rolled way to the same result:
//! `oras attach` three times and `cosign sign` three times per platform manifest.
//!
//! Measured in one run, on the sample images in a docker-registry 2.8 whose access log
//! attributes every request to a client by its User-Agent:
//! - registry requests per image, refcat versus oras + cosign (goal: ≤ 0.6×);
//! - refcat's own time per platform manifest, syft and grype excluded, as a share of
//!   the whole pipeline (goal: ≤ 5%).
//!
//! `just bench publish` starts the registry and runs this; by hand:
//! `cargo run --release --example bench_publish -- HOST ACCESS_LOG REPORT [RUNS]`.

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context as _};
use refcat::catalog::platforms::platform_manifests;
use refcat::publish::{PublishOptions, Publisher};
use refcat::reference::Reference;
use refcat::registry::{Client, ClientConfig};
use refcat::scan::{Grype, Syft};
use refcat::secret::Secret;
use refcat::sign::KeyPair;
use support::{tool, tools};

const PASSWORD: &str = "bench";
const IMAGES: [(&str, &str); 3] = [("debian", "12"), ("alpine", "3.19"), ("lang", "1.0.0")];

/// Access-log lines appended since `offset`, and the new offset.
fn log_since(log: &Path, offset: usize) -> anyhow::Result<(Vec<String>, usize)> {
    let text = std::fs::read_to_string(log).context("reading the registry access log")?;
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    Ok((lines[offset.min(lines.len())..].to_vec(), lines.len()))
}

/// Requests in `lines` whose User-Agent starts with one of `agents`.
fn count(lines: &[String], agents: &[&str]) -> usize {
    lines
        .iter()
        .filter(|l| {
            let agent = l.rsplit('"').nth(1).unwrap_or("");
            agents.iter().any(|a| agent.starts_with(a))
        })
        .count()
}

fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// The hand-rolled way for one platform manifest: syft and grype (not counted), then
/// three `oras attach` and three `cosign sign`. Returns the seconds attach+sign took.
fn baseline(
    host: &str,
    repo: &str,
    digest: &str,
    platform: &str,
    work: &Path,
) -> anyhow::Result<f64> {
    let subject = format!("{host}/{repo}@{digest}");
    run(Command::new(tool("syft"))
        .current_dir(work)
        .env("SYFT_REGISTRY_INSECURE_USE_HTTP", "true")
        .env("SYFT_CHECK_FOR_APP_UPDATE", "false")
        .args([
            "scan",
            &format!("registry:{subject}"),
            "--platform",
            platform,
            "-q",
        ])
        .args([
            "-o",
            "syft-json=sbom.syft.json",
            "-o",
            "spdx-json=sbom.spdx.json",
        ]))?;
    let grype = run(Command::new(tool("grype"))
        .env("GRYPE_DB_CACHE_DIR", tools().join("grype-db"))
        .env("GRYPE_DB_AUTO_UPDATE", "false")
        .env("GRYPE_DB_VALIDATE_AGE", "false")
        .env("GRYPE_CHECK_FOR_APP_UPDATE", "false")
        .args(["sbom:sbom.syft.json", "-o", "json", "-q"])
        .current_dir(work))?;
    std::fs::write(work.join("vulnerabilities.grype.json"), grype)?;
    let start = Instant::now();
    for (artifact_type, file) in [
        ("application/vnd.syft+json", "sbom.syft.json"),
        ("application/spdx+json", "sbom.spdx.json"),
        ("application/vnd.grype+json", "vulnerabilities.grype.json"),
    ] {
        let out = run(Command::new(tool("oras"))
            .current_dir(work)
            .args([
                "attach",
                "--plain-http",
                "--format",
                "json",
                "--artifact-type",
                artifact_type,
            ])
            .args(["--annotation", "dev.refcat.bench=baseline", &subject])
            .arg(format!("{file}:{artifact_type}")))?;
        let attached: serde_json::Value = serde_json::from_str(&out)?;
        let artifact = attached["digest"]
            .as_str()
            .context("oras attach printed no digest")?;
        run(Command::new(tool("cosign"))
            .current_dir(work)
            .env("COSIGN_PASSWORD", PASSWORD)
            .args([
                "sign",
                "--key",
                "cosign.key",
                "--use-signing-config=false",
                "--tlog-upload=false",
            ])
            .args(["--allow-http-registry", "-y"])
            .arg(format!("{host}/{repo}@{artifact}")))?;
    }
    Ok(start.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [host, log, report] = &args[..3.min(args.len())] else {
        bail!("usage: bench_publish HOST ACCESS_LOG REPORT [RUNS]");
    };
    let runs: usize = args.get(3).map(|r| r.parse()).transpose()?.unwrap_or(3);
    let log = Path::new(log);
    let work = tempfile::tempdir()?;
    let key = KeyPair::generate();
    std::fs::write(
        work.path().join("cosign.key"),
        key.to_encrypted_pem(&Secret::new(PASSWORD))?,
    )?;

    let client = Client::new(ClientConfig::new(host.clone()));
    let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/images");
    for (name, _) in IMAGES {
        let image = support::fixture::build(&testdata.join(name))?;
        for side in ["refcat", "baseline"] {
            let mut copy = image.clone();
            copy.repository = format!("bench/{side}/{name}").parse()?;
            support::fixture::push(&client, &copy).await?;
        }
    }

    // requests[image] = (refcat per run, baseline per run); timings per platform manifest.
    let mut requests: BTreeMap<&str, (Vec<usize>, Vec<usize>)> = BTreeMap::new();
    let (mut own_share, mut own_seconds, mut pipeline_seconds, mut baseline_seconds) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut scanner_requests = 0;
    let (_, mut offset) = log_since(log, 0)?;
    for round in 0..runs {
        let publisher = Publisher::new(
            Client::new(ClientConfig::new(host.clone())),
            Syft {
                program: tool("syft"),
                timeout: std::time::Duration::from_secs(600),
            },
            Grype {
                program: tool("grype"),
                timeout: std::time::Duration::from_secs(600),
                db_cache_dir: Some(tools().join("grype-db")),
            },
            key.clone(),
            PublishOptions {
                force: round > 0,
                ..PublishOptions::default()
            },
        );
        for (name, tag) in IMAGES {
            let reference: Reference = format!("{host}/bench/refcat/{name}:{tag}").parse()?;
            for report in publisher.publish(&reference).await? {
                own_seconds.push(report.elapsed_seconds - report.scanner_seconds);
                pipeline_seconds.push(report.elapsed_seconds);
                own_share.push(
                    (report.elapsed_seconds - report.scanner_seconds) / report.elapsed_seconds,
                );
            }
            let (lines, next) = log_since(log, offset)?;
            offset = next;
            requests
                .entry(name)
                .or_default()
                .0
                .push(count(&lines, &["refcat/"]));
            scanner_requests += lines.len() - count(&lines, &["refcat/"]);

            let baseline_ref: Reference = format!("{host}/bench/baseline/{name}:{tag}").parse()?;
            for subject in platform_manifests(&client, &baseline_ref, None).await? {
                baseline_seconds.push(baseline(
                    host,
                    &format!("bench/baseline/{name}"),
                    subject.descriptor.digest.as_ref(),
                    &subject.platform.to_string(),
                    work.path(),
                )?);
            }
            let (lines, next) = log_since(log, offset)?;
            offset = next;
            requests
                .entry(name)
                .or_default()
                .1
                .push(count(&lines, &["oras/", "cosign/"]));
        }
        eprintln!("round {} of {runs} done", round + 1);
    }

    let mut out = String::from("# refcat publish benchmark\n\n");
    out.push_str(&format!(
        "{runs} rounds on docker-registry 2.8 (tag-schema referrers), the sample images \
         (4 platform manifests), syft and grype from the pinned tools. Round 1 publishes, \
         later rounds `--force`. Requests are counted in the registry's access log by \
         User-Agent; syft's own pulls ({scanner_requests} requests in all) are left out \
         on both sides.\n\n"
    ));
    out.push_str("## Registry requests per image (median over rounds)\n\n| image | refcat | oras attach ×3 + cosign sign ×3 | ratio |\n|---|---|---|---|\n");
    let (mut ours_total, mut theirs_total) = (0.0, 0.0);
    for (name, (ours, theirs)) in &requests {
        let (o, t) = (
            median(ours.iter().map(|&n| n as f64).collect()),
            median(theirs.iter().map(|&n| n as f64).collect()),
        );
        ours_total += o;
        theirs_total += t;
        out.push_str(&format!("| {name} | {o} | {t} | {:.2}× |\n", o / t));
    }
    let ratio = ours_total / theirs_total;
    out.push_str(&format!(
        "| all | {ours_total} | {theirs_total} | **{ratio:.2}×** (goal ≤ 0.6×: {}) |\n\n",
        if ratio <= 0.6 { "met" } else { "NOT met" }
    ));
    let share = median(own_share.clone());
    out.push_str("## Time per platform manifest (median over platform manifests and rounds)\n\n");
    out.push_str(&format!(
        "| measure | seconds |\n|---|---|\n| refcat pipeline, syft and grype included | {:.3} |\n| refcat's own time (wall time not spent waiting for syft or grype; pushes that overlap a scan are hidden by it) | {:.3} |\n| oras attach ×3 + cosign sign ×3 (no scanning) | {:.3} |\n\n",
        median(pipeline_seconds),
        median(own_seconds),
        median(baseline_seconds),
    ));
    out.push_str(&format!(
        "refcat's own share of the pipeline: **{:.1}%** (median of {} samples; goal ≤ 5%: {})\n",
        share * 100.0,
        own_share.len(),
        if share <= 0.05 { "met" } else { "NOT met" }
    ));
    if let Some(dir) = Path::new(report).parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(report, &out)?;
    print!("{out}");
    Ok(())
}
