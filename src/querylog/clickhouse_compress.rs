//! Insert bodies in ClickHouse's own compressed block format (LZ4), which the HTTP interface
//! takes with `decompress=1` in every version we support (18.16 included).
//!
//! Why not gzip (`Content-Encoding`), which the sink used first: even zlib's fastest level was
//! about half of the sink's CPU at full load; LZ4 compresses the same rows several times faster.
//! The framing is written here because no maintained crate offers it on its own (the official
//! `clickhouse` crate has it inside, and needs a newer server): a block is a 16-byte CityHash128
//! (v1.0.2) checksum, then method 0x82, the compressed size (these 9 header bytes included)
//! and the raw size as little-endian u32, then the LZ4 block. The hash and LZ4 come from
//! crates (`cityhash-rs`, `lz4_flex`).

/// Raw bytes per block (what `clickhouse-client` uses as `max_compress_block_size`).
pub const BLOCK_SIZE: usize = 1 << 20;

const CHECKSUM_LEN: usize = 16;
const HEADER_LEN: usize = 9;
const METHOD_LZ4: u8 = 0x82;

/// How an insert body is encoded (spooled bodies keep theirs across upgrades).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyEncoding {
    /// ClickHouse native blocks: `decompress=1`
    NativeLz4,
    /// `Content-Encoding: gzip` (bodies spooled by earlier versions)
    Gzip,
}

impl BodyEncoding {
    /// Which encoding a stored body has: gzip bodies start with the gzip magic, native ones
    /// with a checksum and then the LZ4 method byte and a size that fits the body.
    pub fn of(body: &[u8]) -> BodyEncoding {
        if is_native_block(body) || !body.starts_with(&[0x1f, 0x8b, 0x08]) {
            BodyEncoding::NativeLz4
        } else {
            BodyEncoding::Gzip
        }
    }
}

fn is_native_block(body: &[u8]) -> bool {
    body.len() >= CHECKSUM_LEN + HEADER_LEN
        && body[CHECKSUM_LEN] == METHOD_LZ4
        && (u32::from_le_bytes(body[17..21].try_into().expect("4 bytes")) as usize)
            <= body.len() - CHECKSUM_LEN
}

/// Append `raw` to `out` as native LZ4 blocks of at most [`BLOCK_SIZE`] raw bytes.
pub fn compress_into(raw: &[u8], out: &mut Vec<u8>) {
    for chunk in raw.chunks(BLOCK_SIZE) {
        let start = out.len();
        let max = lz4_flex::block::get_maximum_output_size(chunk.len());
        out.resize(start + CHECKSUM_LEN + HEADER_LEN + max, 0);
        let data_at = start + CHECKSUM_LEN + HEADER_LEN;
        let n = lz4_flex::block::compress_into(chunk, &mut out[data_at..])
            .expect("the buffer has LZ4's maximum output size");
        out.truncate(data_at + n);
        let h = start + CHECKSUM_LEN;
        out[h] = METHOD_LZ4;
        out[h + 1..h + 5].copy_from_slice(&((HEADER_LEN + n) as u32).to_le_bytes());
        out[h + 5..h + 9].copy_from_slice(&(chunk.len() as u32).to_le_bytes());
        let sum = checksum(&out[h..]);
        out[start..h].copy_from_slice(&sum);
    }
}

/// A block's checksum over its header and data: CityHash128 as ClickHouse stores it, the
/// first 64-bit half, then the second, each little-endian (the crate returns them as the high
/// and low halves of a u128).
fn checksum(header_and_data: &[u8]) -> [u8; CHECKSUM_LEN] {
    let hash = cityhash_rs::cityhash_102_128(header_and_data);
    let mut sum = [0u8; CHECKSUM_LEN];
    sum[..8].copy_from_slice(&((hash >> 64) as u64).to_le_bytes());
    sum[8..].copy_from_slice(&(hash as u64).to_le_bytes());
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The raw bytes of native LZ4 blocks, as the server reads them; None when a block is
    /// damaged.
    fn decompress(mut body: &[u8]) -> Option<Vec<u8>> {
        let mut raw = Vec::new();
        while !body.is_empty() {
            if !is_native_block(body) {
                return None;
            }
            let h = &body[CHECKSUM_LEN..];
            let compressed = u32::from_le_bytes(h[1..5].try_into().ok()?) as usize;
            let size = u32::from_le_bytes(h[5..9].try_into().ok()?) as usize;
            if compressed < HEADER_LEN || body[..CHECKSUM_LEN] != checksum(&h[..compressed]) {
                return None;
            }
            raw.extend(lz4_flex::block::decompress(&h[HEADER_LEN..compressed], size).ok()?);
            body = &h[compressed..];
        }
        Some(raw)
    }

    #[test]
    fn blocks_round_trip_and_split_at_the_block_size() {
        let raw: Vec<u8> = (0..BLOCK_SIZE * 2 + 12345)
            .map(|i| (i % 251) as u8 ^ (i / 4096) as u8)
            .collect();
        let mut body = Vec::new();
        compress_into(&raw, &mut body);
        assert!(body.len() < raw.len() / 4, "{} bytes", body.len());
        assert_eq!(BodyEncoding::of(&body), BodyEncoding::NativeLz4);
        assert_eq!(decompress(&body).as_deref(), Some(&raw[..]));
        // three blocks: the second starts where the first's compressed size says
        let first = u32::from_le_bytes(body[17..21].try_into().unwrap()) as usize;
        assert_eq!(body[CHECKSUM_LEN + first + CHECKSUM_LEN], METHOD_LZ4);
        // a flipped bit fails the checksum
        let mut bad = body.clone();
        bad[40] ^= 1;
        assert_eq!(decompress(&bad), None);
    }

    #[test]
    fn gzip_bodies_from_earlier_versions_are_recognised() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"rows").unwrap();
        assert_eq!(BodyEncoding::of(&gz.finish().unwrap()), BodyEncoding::Gzip);
    }
}
