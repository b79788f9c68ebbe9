//! Syft JSON may be stored gzip-compressed (`--compress`); everything that reads it
//! reads both forms.

use std::io::{Read as _, Write as _};

use bytes::Bytes;

use crate::media_types::{SYFT_JSON, SYFT_JSON_GZIP};

/// Largest decompressed Syft JSON refcat will read back.
const MAX_SBOM_BYTES: u64 = 512 * 1024 * 1024;
/// How many times its compressed size a Syft JSON may inflate to (syft's JSON
/// compresses about 10:1), and the floor below which the ratio is not applied: a gzip
/// bomb is refused after reading little more than this, not after 512 MiB.
const MAX_RATIO: u64 = 100;
const RATIO_FLOOR: u64 = 8 * 1024 * 1024;

/// A stored layer that cannot be read back.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LayerError(String);

/// Deterministic gzip (no name, no mtime): the same SBOM compresses to the same blob.
pub fn gzip(data: &[u8]) -> Bytes {
    let mut encoder = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    encoder.write_all(data).expect("writing to memory");
    Bytes::from(encoder.finish().expect("writing to memory"))
}

/// A stored Syft JSON layer in either form, as plain JSON bytes.
pub fn syft_json_from_layer(media_type: &str, data: Bytes) -> Result<Bytes, LayerError> {
    match media_type {
        SYFT_JSON => Ok(data),
        SYFT_JSON_GZIP => {
            let limit = (data.len() as u64)
                .saturating_mul(MAX_RATIO)
                .clamp(RATIO_FLOOR, MAX_SBOM_BYTES);
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&data[..])
                .take(limit + 1)
                .read_to_end(&mut out)
                .map_err(|e| LayerError(format!("the gzip Syft JSON is corrupt: {e}")))?;
            if out.len() as u64 > limit {
                return Err(LayerError(format!(
                    "the gzip Syft JSON of {} bytes decompresses to more than {limit} bytes \
                     ({MAX_RATIO} times its size, at most {MAX_SBOM_BYTES}); refused as a \
                     likely gzip bomb",
                    data.len()
                )));
            }
            Ok(Bytes::from(out))
        }
        other => Err(LayerError(format!(
            "the Syft artifact's layer is {other}, not Syft JSON"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_deterministic_and_reads_back() {
        let data = Bytes::from_static(br#"{"artifacts":[]}"#);
        let a = gzip(&data);
        assert_eq!(a, gzip(&data));
        assert_eq!(syft_json_from_layer(SYFT_JSON_GZIP, a).unwrap(), data);
        assert_eq!(syft_json_from_layer(SYFT_JSON, data.clone()).unwrap(), data);
        assert!(syft_json_from_layer(SYFT_JSON_GZIP, data).is_err());
    }

    #[test]
    fn a_gzip_bomb_is_refused_early() {
        let bomb = gzip(&vec![b' '; 64 * 1024 * 1024]);
        assert!(bomb.len() < 256 * 1024);
        let refused = syft_json_from_layer(SYFT_JSON_GZIP, bomb).unwrap_err();
        assert!(refused.to_string().contains("gzip bomb"), "{refused}");
    }
}
