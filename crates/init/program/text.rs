//! Reading and writing the few text forms the init deals in: NUL-terminated fields,
//! decimal, octal and hexadecimal numbers.

/// The NUL-terminated string at `buf[*pos..]`, without its NUL; moves `pos` past it.
pub fn next_string<'a>(buf: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let start = *pos;
    let len = buf.get(start..)?.iter().position(|&b| b == 0)?;
    *pos = start + len + 1;
    Some(&buf[start..start + len])
}

/// A number of at most 12 digits in `radix` (10 or 8).
pub fn parse_number(text: &[u8], radix: u32) -> Option<usize> {
    if text.is_empty() || text.len() > 12 {
        return None;
    }
    let mut n = 0usize;
    for &c in text {
        let d = (c as char).to_digit(radix)? as usize;
        n = n * radix as usize + d;
    }
    Some(n)
}

/// A 64-bit mask in hexadecimal, 1 to 16 digits.
pub fn parse_hex_u64(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 16 {
        return None;
    }
    let mut n = 0u64;
    for &c in text {
        n = (n << 4) | u64::from((c as char).to_digit(16)?);
    }
    Some(n)
}

pub fn starts_with(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && &s[..prefix.len()] == prefix
}

/// `n` in decimal, written at the end of `out`.
pub fn decimal(mut n: u32, out: &mut [u8; 12]) -> &[u8] {
    let mut at = out.len();
    loop {
        at -= 1;
        out[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &out[at..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_each_base() {
        assert_eq!(parse_number(b"0755", 8), Some(0o755));
        assert_eq!(parse_number(b"1000", 10), Some(1000));
        assert_eq!(parse_number(b"", 10), None);
        assert_eq!(parse_number(b"12a", 10), None);
        assert_eq!(parse_hex_u64(b"ffffffffffffffff"), Some(u64::MAX));
        assert_eq!(parse_hex_u64(b"20000000c"), Some(0x2_0000_000c));
        assert_eq!(parse_hex_u64(b"1ffffffffffffffff"), None);
        assert_eq!(parse_hex_u64(b"x"), None);
        assert_eq!(decimal(4_294_967_295, &mut [0; 12]), b"4294967295");
        assert_eq!(decimal(0, &mut [0; 12]), b"0");
    }

    #[test]
    fn fields_are_split_at_nul() {
        let buf = b"a\0\0bc\0d";
        let mut pos = 0;
        assert_eq!(next_string(buf, &mut pos), Some(&b"a"[..]));
        assert_eq!(next_string(buf, &mut pos), Some(&b""[..]));
        assert_eq!(next_string(buf, &mut pos), Some(&b"bc"[..]));
        assert_eq!(next_string(buf, &mut pos), None, "an unterminated field");
        assert!(starts_with(b"PATH=/bin", b"PATH="));
    }
}
