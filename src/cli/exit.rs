//! Exit codes: what each means, how an error maps to one, and the table each
//! subcommand's `--help` ends with.

use crate::catalog::platforms::ResolveError;
use crate::catalog::referrers_tree::TreeError;
use crate::catalog::CatalogError;
use crate::publish::PublishError;
use crate::reference::ReferenceError;
use crate::registry::RegistryError;

/// Exit code for bad input (also clap's).
pub const EXIT_USAGE: u8 = 2;
/// Exit code when the thing asked for does not exist.
pub const EXIT_NOT_FOUND: u8 = 3;
/// Exit code when the registry refused the credentials.
pub const EXIT_AUTH: u8 = 4;
/// Exit code when the registry is unreachable or failing.
pub const EXIT_UNAVAILABLE: u8 = 5;
/// Exit code when syft or grype failed.
pub const EXIT_SCANNER: u8 = 6;
/// Exit code when an artifact is unsigned or its signature does not verify.
pub const EXIT_UNVERIFIED: u8 = 7;
/// Exit code of `publish` and `backfill` with `--detailed-exitcode` when everything was
/// already there.
pub const EXIT_NOTHING_TO_DO: u8 = 10;

/// The rows every command that reads a registry shares.
macro_rules! registry_rows {
    () => {
        "  1   any other failure\n  2   bad input: a malformed or hostile reference, digest, platform or option\n  3   not found: no such repository, tag, manifest or platform\n  4   the registry refused the credentials (or asked for some)\n  5   the registry is unreachable, failing after retries, or its certificate is not trusted\n"
    };
}

/// `publish --help`'s exit codes.
pub const PUBLISH_EXIT_CODES: &str = concat!(
    "Exit codes:\n  0   done: something was published, or everything was already there\n",
    registry_rows!(),
    "  6   syft or grype failed\n  10  with --detailed-exitcode: everything was already there\n",
    "With several images, every one is tried; the exit code is the first failure's."
);

/// `backfill --help`'s exit codes.
pub const BACKFILL_EXIT_CODES: &str = concat!(
    "Exit codes:\n  0   done: something was published, or everything was already there\n",
    registry_rows!(),
    "  6   some image failed (the summary names it)\n  10  with --detailed-exitcode: everything was already there"
);

/// `verify --help`'s exit codes.
pub const VERIFY_EXIT_CODES: &str = concat!(
    "Exit codes:\n  0   every refcat artifact verified\n",
    registry_rows!(),
    "  7   an artifact is unsigned or its signature does not verify, or there are none"
);

/// `discover --help`'s exit codes.
pub const DISCOVER_EXIT_CODES: &str = concat!("Exit codes:\n  0   printed\n", registry_rows!());

/// `serve --help` and `worker --help`'s exit codes.
pub const SERVER_EXIT_CODES: &str = concat!(
    "Exit codes:\n  0   stopped on SIGTERM or Ctrl-C\n",
    registry_rows!(),
    "The registry rows apply only at start-up; afterwards failures are logged and answered."
);

/// `key --help`'s exit codes.
pub const KEY_EXIT_CODES: &str =
    "Exit codes:\n  0   written\n  1   a file exists (see --force), cannot be written, or COSIGN_PASSWORD is unset\n  2   bad input";

/// The registry error inside `cause`, looking through the wrappers that show it
/// transparently (and so hide it from `anyhow`'s chain).
fn registry_error_in<'a>(
    cause: &'a (dyn std::error::Error + 'static),
) -> Option<&'a RegistryError> {
    let resolve = |e: &'a ResolveError| match e {
        ResolveError::Registry(e) => Some(e),
        _ => None,
    };
    cause
        .downcast_ref::<RegistryError>()
        .or_else(|| match cause.downcast_ref::<TreeError>() {
            Some(TreeError::Registry(e)) => Some(e),
            _ => None,
        })
        .or_else(|| cause.downcast_ref::<ResolveError>().and_then(resolve))
        .or_else(|| match cause.downcast_ref::<PublishError>() {
            Some(PublishError::Registry(e) | PublishError::NotWritable { source: e, .. }) => {
                Some(e)
            }
            Some(PublishError::Resolve(e)) => resolve(e),
            _ => None,
        })
        .or_else(|| match cause.downcast_ref::<CatalogError>() {
            Some(CatalogError::Registry(e) | CatalogError::NoCatalog(e)) => Some(e),
            Some(CatalogError::Resolve(e)) => resolve(e),
            _ => None,
        })
}

/// The exit code for an error: 2 bad input, 3 not found (also: no such platform), 4 auth,
/// 5 registry unavailable, 6 a scanner failed, 1 otherwise.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.is::<ReferenceError>()
            || cause.is::<crate::registry::TlsError>()
            || cause.is::<crate::oci::PlatformError>()
            || cause.is::<crate::digest::DigestError>()
        {
            return EXIT_USAGE;
        }
        if matches!(
            cause.downcast_ref::<PublishError>(),
            Some(PublishError::Scan(_))
        ) || cause.is::<crate::scan::ScanError>()
        {
            return EXIT_SCANNER;
        }
        if matches!(
            cause.downcast_ref::<ResolveError>(),
            Some(ResolveError::NoPlatform { .. })
        ) || matches!(
            cause.downcast_ref::<PublishError>(),
            Some(PublishError::Resolve(ResolveError::NoPlatform { .. }))
        ) {
            return EXIT_NOT_FOUND;
        }
        let registry_error = registry_error_in(cause);
        if let Some(e) = registry_error {
            return match e {
                RegistryError::NotFound { .. } => EXIT_NOT_FOUND,
                RegistryError::Unauthorized { .. } | RegistryError::Forbidden { .. } => EXIT_AUTH,
                RegistryError::Unavailable { .. }
                | RegistryError::Timeout { .. }
                | RegistryError::Interrupted { .. }
                | RegistryError::Connect { .. }
                | RegistryError::Certificate { .. } => EXIT_UNAVAILABLE,
                _ => 1,
            };
        }
    }
    1
}
