//! `tls-server-end-point` channel binding data (RFC 5929): the server certificate hashed
//! with the hash of its signature algorithm (SHA-256 when that is MD5 or SHA-1).

use ring::digest;

/// The binding for the server certificate `cert` (DER), or `None` when its signature
/// algorithm names no single hash (Ed25519, RSA-PSS) or the certificate cannot be read;
/// then SCRAM runs without channel binding (and `channel_binding=require` fails).
pub(crate) fn tls_server_end_point(cert: &[u8]) -> Option<Vec<u8>> {
    let algorithm = match signature_algorithm_oid(cert)? {
        // sha256WithRSAEncryption, ecdsa-with-SHA256, and the MD5/SHA-1 ones (upgraded).
        [
            0x2a,
            0x86,
            0x48,
            0x86,
            0xf7,
            0x0d,
            0x01,
            0x01,
            0x0b | 0x04 | 0x05,
        ]
        | [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]
        | [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01] => &digest::SHA256,
        // sha384WithRSAEncryption, ecdsa-with-SHA384.
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c]
        | [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03] => &digest::SHA384,
        // sha512WithRSAEncryption, ecdsa-with-SHA512.
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d]
        | [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04] => &digest::SHA512,
        _ => return None,
    };
    Some(digest::digest(algorithm, cert).as_ref().to_vec())
}

/// The OID (content bytes) of `Certificate.signatureAlgorithm.algorithm`:
/// `SEQUENCE { tbsCertificate SEQUENCE, signatureAlgorithm SEQUENCE { OID, .. }, .. }`.
fn signature_algorithm_oid(cert: &[u8]) -> Option<&[u8]> {
    let (certificate, _) = element(cert, 0x30)?;
    let (_tbs, rest) = element(certificate, 0x30)?;
    let (algorithm, _) = element(rest, 0x30)?;
    let (oid, _) = element(algorithm, 0x06)?;
    Some(oid)
}

/// One DER element of type `tag` at the start of `input`: (its content, what follows).
fn element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&first, rest) = input.split_first()?;
    if first != tag {
        return None;
    }
    let (&len_byte, rest) = rest.split_first()?;
    let (len, rest) = if len_byte < 0x80 {
        (usize::from(len_byte), rest)
    } else {
        let count = usize::from(len_byte & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (bytes, rest) = rest.split_at(count);
        let len = bytes.iter().fold(0usize, |n, &b| (n << 8) | usize::from(b));
        (len, rest)
    };
    (rest.len() >= len).then(|| rest.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_signature_algorithm() {
        // SEQUENCE { SEQUENCE {} (tbs), SEQUENCE { OID ecdsa-with-SHA384 }, BIT STRING }
        let cert = [
            0x30, 0x12, 0x30, 0x00, 0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04,
            0x03, 0x03, 0x03, 0x02, 0x00, 0x00,
        ];
        assert_eq!(tls_server_end_point(&cert).map(|h| h.len()), Some(48));
        // Ed25519 (1.3.101.112): no single hash.
        let ed = [
            0x30, 0x0b, 0x30, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x00,
        ];
        assert_eq!(tls_server_end_point(&ed), None);
        assert_eq!(tls_server_end_point(&[0x30, 0x82, 0xff]), None);
        assert_eq!(tls_server_end_point(&[]), None);
    }
}
