//! Payload masking (RFC 6455 §5.3).
//!
//! Masking XORs every payload byte `i` with `key[i % 4]`. It is its own inverse, so the same
//! function masks (client side) and unmasks (server side).
//!
//! [`apply_mask`] works on 8-byte words: the 4-byte key is rotated to the starting offset and
//! repeated into a `u64`, then whole words are XORed (which the compiler turns into SIMD), and
//! only the tail is done byte by byte. [`extend_masked`] copies and unmasks in a single pass
//! (see its comments); `cargo bench -p ws-proto --bench mask` measures both against memcpy, and
//! `docs/benchmarks.md` has the numbers.

/// XORs `data` in place with `key`, starting at position `offset` of the key stream.
///
/// `offset` is the number of payload bytes of the same frame already processed; pass it when a
/// frame's payload is unmasked in several pieces as it arrives. Returns the offset to use for
/// the next piece.
///
/// ```
/// use ws_proto::mask::apply_mask;
/// let key = [0x37, 0xfa, 0x21, 0x3d];
/// let mut payload = *b"Hello";
/// apply_mask(&mut payload, key, 0);
/// assert_eq!(payload, [0x7f, 0x9f, 0x4d, 0x51, 0x58]); // RFC 6455 §5.7
/// // Unmasking in two pieces gives the original back.
/// let off = apply_mask(&mut payload[..2], key, 0);
/// apply_mask(&mut payload[2..], key, off);
/// assert_eq!(&payload, b"Hello");
/// ```
#[inline]
pub fn apply_mask(data: &mut [u8], key: [u8; 4], offset: usize) -> usize {
    let rotated = rotate(key, offset);
    let word = u64::from_ne_bytes([
        rotated[0], rotated[1], rotated[2], rotated[3], rotated[0], rotated[1], rotated[2],
        rotated[3],
    ]);
    let mut words = data.chunks_exact_mut(8);
    for chunk in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
    }
    for (i, byte) in words.into_remainder().iter_mut().enumerate() {
        *byte ^= rotated[i & 3];
    }
    offset.wrapping_add(data.len())
}

/// Appends `src` XORed with `key` (from key position `offset`) to `dst`: one pass that copies and
/// unmasks, used to move received payload into a message buffer. Returns the next offset.
///
/// ```
/// use ws_proto::mask::{apply_mask, extend_masked};
/// let key = [1, 2, 3, 4];
/// let mut masked = b"some payload".to_vec();
/// apply_mask(&mut masked, key, 0);
/// let mut out = Vec::new();
/// extend_masked(&mut out, &masked, key, 0);
/// assert_eq!(out, b"some payload");
/// ```
#[inline]
pub fn extend_masked(dst: &mut Vec<u8>, src: &[u8], key: [u8; 4], offset: usize) -> usize {
    if src.len() < FUSED_MIN {
        // Short payloads: copying, then unmasking in place (all in L1) beats building the key
        // pattern below.
        let start = dst.len();
        dst.extend_from_slice(src);
        return apply_mask(&mut dst[start..], key, offset);
    }
    // One pass: the key, rotated to `offset`, repeated over FUSED_CHUNK bytes, and the source
    // XORed with it chunk by chunk. A `Zip` of two slice iterators is `TrustedLen`, so `extend`
    // writes straight into the reserved capacity (no bounds checks, no per-byte length update)
    // and the XOR is vectorised; chunk lengths are multiples of 4 except the last, so every
    // chunk starts at the same key phase. This avoids the second pass over the destination that
    // copy-then-unmask makes (about 1.5 times as fast at 64 KiB), and glibc's `rep movsb`,
    // which is slow for some source/destination distances on AMD Zen 3.
    let pattern = [rotate(key, offset); FUSED_CHUNK / 4];
    let pattern = pattern.as_flattened();
    dst.reserve(src.len());
    for chunk in src.chunks(FUSED_CHUNK) {
        dst.extend(chunk.iter().zip(pattern).map(|(byte, k)| byte ^ k));
    }
    offset.wrapping_add(src.len())
}

/// Bytes per step of [`extend_masked`]'s fused loop (the length of its key pattern).
const FUSED_CHUNK: usize = 256;
/// Below this length [`extend_masked`] copies, then unmasks in place.
const FUSED_MIN: usize = 64;

#[inline]
fn rotate(key: [u8; 4], offset: usize) -> [u8; 4] {
    let s = offset & 3;
    [key[s], key[(s + 1) & 3], key[(s + 2) & 3], key[(s + 3) & 3]]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive(data: &mut [u8], key: [u8; 4], offset: usize) {
        for (i, b) in data.iter_mut().enumerate() {
            *b ^= key[(offset + i) % 4];
        }
    }

    #[test]
    fn matches_naive_for_every_length_and_offset() {
        let key = [0xde, 0xad, 0xbe, 0xef];
        for len in 0..70 {
            for offset in 0..8 {
                let orig: Vec<u8> = (0..len as u8).collect();
                let mut fast = orig.clone();
                let mut slow = orig.clone();
                apply_mask(&mut fast, key, offset);
                naive(&mut slow, key, offset);
                assert_eq!(fast, slow, "len {len} offset {offset}");
            }
        }
    }

    #[test]
    fn extend_masked_matches_naive_for_every_length_and_offset() {
        let key = [0xde, 0xad, 0xbe, 0xef];
        // Crosses FUSED_MIN and several FUSED_CHUNK boundaries.
        for len in (0..300).chain(500..530).chain(1020..1030) {
            for offset in 0..8 {
                let src: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
                let mut want = src.clone();
                naive(&mut want, key, offset);
                let mut dst = vec![1, 2, 3];
                let next = extend_masked(&mut dst, &src, key, offset);
                assert_eq!(next, offset + len, "len {len} offset {offset}");
                assert_eq!(&dst[..3], &[1, 2, 3]);
                assert_eq!(&dst[3..], &want[..], "len {len} offset {offset}");
            }
        }
    }

    proptest! {
        /// mask ∘ mask = identity, for every key, offset and split point.
        #[test]
        fn mask_is_an_involution(data in proptest::collection::vec(any::<u8>(), 0..300),
                                 key in any::<[u8; 4]>(), offset in 0usize..16, split in 0usize..300) {
            let mut buf = data.clone();
            apply_mask(&mut buf, key, offset);
            let split = split.min(buf.len());
            let (a, b) = buf.split_at_mut(split);
            let next = apply_mask(a, key, offset);
            apply_mask(b, key, next);
            prop_assert_eq!(buf, data);
        }

        /// Copy+unmask in pieces equals unmasking the whole payload in place.
        #[test]
        fn extend_masked_in_pieces(data in proptest::collection::vec(any::<u8>(), 0..1200),
                                   key in any::<[u8; 4]>(), split in 0usize..1200) {
            let mut want = data.clone();
            apply_mask(&mut want, key, 0);
            let split = split.min(data.len());
            let mut out = Vec::new();
            let next = extend_masked(&mut out, &data[..split], key, 0);
            extend_masked(&mut out, &data[split..], key, next);
            prop_assert_eq!(out, want);
        }
    }
}
