//! What a failed TLS handshake meant, read from the rustls error inside whatever
//! error a client library wrapped it in (the registry's HTTP client, the broker's).

use rustls::AlertDescription;

/// What a failed connection says about TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handshake {
    /// The peer answered the TLS hello with something that is not TLS: it speaks plain
    /// text (HTTP, NATS).
    NotTls,
    /// The peer speaks TLS and its certificate is not trusted.
    Untrusted(String),
    /// The peer refused this side's certificate, or the lack of one.
    CertificateRefused(String),
    /// Anything else (refused, reset, timed out, another TLS failure).
    Other,
}

/// Reads the TLS error inside `error` or its sources, if there is one. An `io::Error`
/// hides the error it wraps from `source()` (and may wrap another `io::Error`), so each
/// one met is opened with `get_ref` too.
pub fn handshake(error: &(dyn std::error::Error + 'static)) -> Handshake {
    let mut pending: Vec<&(dyn std::error::Error + 'static)> = vec![error];
    while let Some(e) = pending.pop() {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return match tls {
                rustls::Error::InvalidMessage(_) => Handshake::NotTls,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
                    Handshake::Untrusted(tls.to_string())
                }
                rustls::Error::AlertReceived(
                    AlertDescription::CertificateRequired
                    | AlertDescription::BadCertificate
                    | AlertDescription::UnsupportedCertificate
                    | AlertDescription::CertificateExpired
                    | AlertDescription::CertificateRevoked
                    | AlertDescription::CertificateUnknown
                    | AlertDescription::UnknownCA,
                ) => Handshake::CertificateRefused(tls.to_string()),
                _ => Handshake::Other,
            };
        }
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            pending.push(inner);
        }
        pending.extend(e.source());
    }
    Handshake::Other
}
