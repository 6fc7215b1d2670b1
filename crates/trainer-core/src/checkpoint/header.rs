/// The first 8 bytes of every checkpoint file.
pub const MAGIC: [u8; 8] = *b"TRNRCKPT";
/// The format's major version: a reader refuses other majors.
pub const FORMAT_MAJOR: u16 = 1;
/// The format's minor version: additions a reader of the same major may ignore.
pub const FORMAT_MINOR: u16 = 2;
/// Bytes in the header.
pub const HEADER_LEN: usize = 24;

/// The fixed header in front of the payload (all integers little-endian):
///
/// | bytes  | field |
/// |--------|-------|
/// | 0..8   | magic `TRNRCKPT` |
/// | 8..10  | format major version (u16) |
/// | 10..12 | format minor version (u16) |
/// | 12..20 | payload length in bytes (u64) |
/// | 20..24 | CRC-32 (IEEE) of bytes 0..20 and of the payload (u32) |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Format major version.
    pub major: u16,
    /// Format minor version.
    pub minor: u16,
    /// Payload length in bytes.
    pub payload_len: u64,
    /// CRC-32 over the first 20 header bytes and the payload.
    pub checksum: u32,
}

impl Header {
    /// The header of `payload` in the current format version.
    pub fn for_payload(payload: &[u8]) -> Self {
        let mut header = Self {
            major: FORMAT_MAJOR,
            minor: FORMAT_MINOR,
            payload_len: payload.len() as u64,
            checksum: 0,
        };
        header.checksum = header.compute_checksum(payload);
        header
    }

    /// The header of a payload of `payload_len` bytes whose CRC-32 `payload_checksum` computed
    /// while it was written: the header's own bytes come first in the checksum, so the two
    /// checksums are combined.
    pub fn for_streamed_payload(payload_len: u64, payload_checksum: &crc32fast::Hasher) -> Self {
        let mut header = Self {
            major: FORMAT_MAJOR,
            minor: FORMAT_MINOR,
            payload_len,
            checksum: 0,
        };
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&header.to_bytes()[..20]);
        hasher.combine(payload_checksum);
        header.checksum = hasher.finalize();
        header
    }

    /// The CRC-32 this header and `payload` should carry.
    pub fn compute_checksum(&self, payload: &[u8]) -> u32 {
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&self.to_bytes()[..20]);
        hasher.update(payload);
        hasher.finalize()
    }

    /// The header's 24 bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut bytes = [0u8; HEADER_LEN];
        bytes[0..8].copy_from_slice(&MAGIC);
        bytes[8..10].copy_from_slice(&self.major.to_le_bytes());
        bytes[10..12].copy_from_slice(&self.minor.to_le_bytes());
        bytes[12..20].copy_from_slice(&self.payload_len.to_le_bytes());
        bytes[20..24].copy_from_slice(&self.checksum.to_le_bytes());
        bytes
    }

    /// Reads the fields of a 24-byte header whose magic was already checked.
    pub(crate) fn from_bytes(bytes: &[u8; HEADER_LEN]) -> Self {
        let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
        let mut len = [0u8; 8];
        len.copy_from_slice(&bytes[12..20]);
        let mut crc = [0u8; 4];
        crc.copy_from_slice(&bytes[20..24]);
        Self {
            major: u16_at(8),
            minor: u16_at(10),
            payload_len: u64::from_le_bytes(len),
            checksum: u32::from_le_bytes(crc),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_reads_back_from_its_bytes_and_its_checksum_covers_both_parts() {
        let payload = b"some payload bytes";
        let header = Header::for_payload(payload);
        let bytes = header.to_bytes();
        assert_eq!(&bytes[..8], &MAGIC);
        assert_eq!(Header::from_bytes(&bytes), header);
        assert_eq!(
            (header.major, header.minor, header.payload_len),
            (FORMAT_MAJOR, FORMAT_MINOR, payload.len() as u64)
        );
        assert_eq!(header.compute_checksum(payload), header.checksum);
        let mut streamed = crc32fast::Hasher::new();
        streamed.update(&payload[..5]);
        streamed.update(&payload[5..]);
        assert_eq!(
            Header::for_streamed_payload(payload.len() as u64, &streamed),
            header,
            "a checksum combined from the streamed payload's is the one computed in one piece"
        );
        assert_ne!(
            header.compute_checksum(b"some payload bytez"),
            header.checksum
        );
        let mut other = header;
        other.minor += 1;
        assert_ne!(
            other.compute_checksum(payload),
            header.checksum,
            "the header's own fields are covered"
        );
    }
}
